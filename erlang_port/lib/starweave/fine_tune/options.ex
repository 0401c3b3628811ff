defmodule Starweave.FineTune.Options do
  @moduledoc false
  # The options of Starweave.FineTune.start_link/1, checked before anything is spawned.

  @repo_root Path.expand("../../../..", __DIR__)

  @defaults [
    name: Starweave.FineTune,
    node: nil,
    script: nil,
    workspace: nil,
    timeout: 30_000,
    max_frame_bytes: 64 * 1024 * 1024,
    shutdown_timeout: 5_000,
    event_window: 32,
    log_level: :info,
    registry: nil,
    args: [],
    env: []
  ]

  @spec defaults() :: keyword
  def defaults, do: @defaults

  @spec validate(keyword) :: {:ok, map} | {:error, String.t()}
  def validate(opts) when is_list(opts) do
    with :ok <- known(opts),
         o = Map.new(Keyword.merge(@defaults, opts)),
         {:ok, node} <- node_exe(o.node),
         {:ok, script} <- script(o.script),
         {:ok, workspace} <- workspace(o.workspace),
         :ok <- pos_int(o, :timeout),
         :ok <- pos_int(o, :max_frame_bytes),
         :ok <- pos_int(o, :shutdown_timeout),
         :ok <- pos_int(o, :event_window),
         :ok <- one_of(o, :log_level, [:debug, :info, :warning, :error]),
         :ok <- list_of_strings(o, :args),
         :ok <- optional_string(o, :registry),
         :ok <- name(o.name) do
      {:ok, %{o | node: node, script: script, workspace: workspace}}
    end
  end

  def validate(other), do: {:error, "options must be a keyword list, got #{inspect(other)}"}

  defp known(opts) do
    case Keyword.keys(opts) -- Keyword.keys(@defaults) do
      [] -> :ok
      unknown -> {:error, "unknown options #{inspect(unknown)}; known: #{inspect(Keyword.keys(@defaults))}"}
    end
  end

  defp node_exe(nil) do
    case System.find_executable("node") do
      nil -> {:error, ":node not given and no `node` executable on the PATH"}
      path -> {:ok, path}
    end
  end

  defp node_exe(path) when is_binary(path) do
    if File.regular?(path), do: {:ok, path}, else: {:error, ":node #{inspect(path)} is not a file"}
  end

  defp node_exe(other), do: {:error, ":node must be a path, got #{inspect(other)}"}

  defp script(nil), do: script(Path.join(@repo_root, "dist/src/port/main.js"))

  defp script(path) when is_binary(path) do
    if File.regular?(path),
      do: {:ok, path},
      else: {:error, ":script #{inspect(path)} does not exist (build the sidecar: npm run build:ts)"}
  end

  defp script(other), do: {:error, ":script must be a path, got #{inspect(other)}"}

  defp workspace(nil), do: workspace(File.cwd!())

  defp workspace(path) when is_binary(path) do
    if File.dir?(path),
      do: {:ok, Path.expand(path)},
      else: {:error, ":workspace #{inspect(path)} is not a folder"}
  end

  defp workspace(other), do: {:error, ":workspace must be a path, got #{inspect(other)}"}

  defp pos_int(o, k) do
    case Map.fetch!(o, k) do
      v when is_integer(v) and v > 0 -> :ok
      v -> {:error, "#{inspect(k)} must be a positive integer, got #{inspect(v)}"}
    end
  end

  defp one_of(o, k, allowed) do
    if Map.fetch!(o, k) in allowed,
      do: :ok,
      else: {:error, "#{inspect(k)} must be one of #{inspect(allowed)}, got #{inspect(Map.fetch!(o, k))}"}
  end

  defp list_of_strings(o, k) do
    v = Map.fetch!(o, k)

    if is_list(v) and Enum.all?(v, &is_binary/1),
      do: :ok,
      else: {:error, "#{inspect(k)} must be a list of strings"}
  end

  defp optional_string(o, k) do
    case Map.fetch!(o, k) do
      nil -> :ok
      v when is_binary(v) and v != "" -> :ok
      v -> {:error, "#{inspect(k)} must be a path (a string), got #{inspect(v)}"}
    end
  end

  defp name(nil), do: :ok
  defp name(n) when is_atom(n), do: :ok
  defp name({:global, _}), do: :ok
  defp name({:via, m, _}) when is_atom(m), do: :ok

  defp name(other),
    do: {:error, ":name must be an atom, {:global, term} or {:via, module, term}, got #{inspect(other)}"}
end
