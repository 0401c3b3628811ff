defmodule Starweave.Patterns.Dispatcher do
  @moduledoc """
  Routes pattern work to matcher processes anywhere in the cluster. Matchers join the `:matchers`
  process group of `:pg`; the dispatcher picks one by hashing the pattern id over the current members,
  so a pattern stays on one matcher while membership is stable.
  """

  @group :matchers

  @doc """
  Returns the matcher responsible for `pattern_id`, or `{:error, :no_matchers}` when no matcher is
  running in the cluster.
  """
  @spec matcher_for(String.t()) :: {:ok, pid()} | {:error, :no_matchers}
  def matcher_for(pattern_id) do
    case :pg.get_members(@group) do
      [] ->
        {:error, :no_matchers}

      members ->
        sorted = Enum.sort(members)
        {:ok, Enum.at(sorted, :erlang.phash2(pattern_id, length(sorted)))}
    end
  end

  @doc """
  Sends a window to the matcher of `pattern_id` without waiting for the result. Returns `:ok`, or
  `{:error, :no_matchers}`.
  """
  @spec dispatch(String.t(), map()) :: :ok | {:error, :no_matchers}
  def dispatch(pattern_id, window) do
    with {:ok, pid} <- matcher_for(pattern_id) do
      GenServer.cast(pid, {:match, pattern_id, window})
    end
  end

  @doc "Joins the calling process to the matchers group (called by each matcher in `init/1`)."
  @spec join() :: :ok
  def join, do: :pg.join(@group, self())
end
