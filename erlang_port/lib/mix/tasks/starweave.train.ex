defmodule Mix.Tasks.Starweave.Train do
  @shortdoc "Trains one LoRA run over several BEAM nodes (data parallel)"
  @moduledoc """
  One training run spread over the nodes of a cluster: `Starweave.FineTune.Distributed.train/3` from
  the command line.

      mix starweave.train --nodes a@host1,b@host2 --config run.json [--runs-dir runs]
                          [--workspace DIR] [--script PATH] [--name coord@host] [--cookie COOKIE]
                          [--hash-every 10] [--max-restarts 5] [--resume] [--run NAME]

    * `--nodes` - the worker nodes (each starts a sidecar under its own supervision tree); required
    * `--config` - the run config, a path inside every node's workspace; required unless `--resume`
    * `--runs-dir` - where worker `i` writes its run (`RUNS_DIR/worker-i/`), default `.starweave/runs`
    * `--workspace` - the sidecars' workspace on the nodes (default: this folder)
    * `--script` - the sidecar's entry on the nodes (default: this checkout's `dist/src/port/main.js`)
    * `--name`, `--cookie` - this node's name and the cluster's cookie when this node is not yet
      distributed (default name `starweave_train_<pid>@<host of the first worker>`; default cookie:
      `~/.erlang.cookie`)
    * `--resume` - continue the run from the newest checkpoint on the workers (`--run NAME`: which run)

  Nodes that do not have this application's code get it loaded from here (the same OTP release
  assumed). Prints one line per step and per membership change; exits non-zero when the run fails.
  """
  use Mix.Task

  alias Starweave.FineTune.Distributed

  @switches [
    nodes: :string,
    config: :string,
    runs_dir: :string,
    workspace: :string,
    script: :string,
    name: :string,
    cookie: :string,
    hash_every: :integer,
    max_restarts: :integer,
    resume: :boolean,
    run: :string
  ]

  @impl true
  def run(argv) do
    {o, rest, bad} = OptionParser.parse(argv, strict: @switches)
    if bad != [], do: Mix.raise("starweave.train: unknown or malformed options #{inspect(bad)}")
    if rest != [], do: Mix.raise("starweave.train: unexpected arguments #{inspect(rest)}")
    nodes = parse_nodes(o[:nodes])
    if !o[:resume] and !o[:config], do: Mix.raise("starweave.train: --config FILE is required (or --resume)")

    Mix.Task.run("app.start")
    start_distribution(o, nodes)
    Enum.each(nodes, &connect!/1)
    Enum.each(nodes, &ensure_code!/1)

    sidecar =
      [workspace: Path.expand(o[:workspace] || "."), timeout: 600_000] ++
        if(o[:script], do: [script: o[:script]], else: [])

    params = %{"config" => o[:config], "runs_dir" => o[:runs_dir] || ".starweave/runs", "run" => o[:run]}

    opts = [
      sidecar: sidecar,
      hash_every: o[:hash_every] || 10,
      max_restarts: o[:max_restarts] || 5,
      notify: printer()
    ]

    result =
      if o[:resume],
        do: Distributed.resume(nodes, params, opts),
        else: Distributed.train(nodes, Map.delete(params, "run"), opts)

    # let the printer show the last events first
    Process.sleep(50)

    case result do
      {:ok, results} ->
        for r <- results do
          Mix.shell().info(
            "worker #{r["worker"]}: #{r["status"]}, #{r["steps"]}/#{r["totalSteps"]} steps, last loss #{fmt(r["lastLoss"])}, run #{r["runDir"]}"
          )
        end

        :ok

      {:error, reason} ->
        Mix.raise("starweave.train: the run failed: #{inspect(reason)}")
    end
  end

  defp parse_nodes(nil), do: Mix.raise("starweave.train: --nodes a@host,b@host is required")

  defp parse_nodes(s) do
    nodes = s |> String.split(",", trim: true) |> Enum.map(&String.trim/1)

    for n <- nodes,
        not String.match?(n, ~r/^[^@\s]+@[^@\s]+$/),
        do: Mix.raise("starweave.train: --nodes: '#{n}' is not a node name (name@host)")

    if nodes == [], do: Mix.raise("starweave.train: --nodes lists no node")
    Enum.map(nodes, &String.to_atom/1)
  end

  defp start_distribution(o, [first | _]) do
    unless Node.alive?() do
      {_, 0} = System.cmd("epmd", ["-daemon"])
      host = first |> Atom.to_string() |> String.split("@") |> List.last()
      mode = if String.contains?(host, "."), do: :longnames, else: :shortnames
      name = String.to_atom(o[:name] || "starweave_train_#{System.pid()}@#{host}")

      case Node.start(name, mode) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          Mix.raise("starweave.train: cannot start distribution as #{name}: #{inspect(reason)}")
      end
    end

    if o[:cookie], do: Node.set_cookie(String.to_atom(o[:cookie]))
  end

  defp connect!(node) do
    unless Node.connect(node) == true,
      do: Mix.raise("starweave.train: cannot connect to #{node} (is it running, with the same cookie?)")
  end

  # the application's modules, loaded on a node that lacks them
  defp ensure_code!(node) do
    unless :erpc.call(node, :code, :which, [Distributed]) != :non_existing do
      {:ok, mods} = :application.get_key(:starweave_finetune, :modules)

      for m <- mods do
        {^m, bin, file} = :code.get_object_code(m)
        {:module, ^m} = :erpc.call(node, :code, :load_binary, [m, file, bin])
      end

      :ok = :erpc.call(node, :application, :load, [app_spec()]) |> ok_loaded()
    end
  end

  defp app_spec do
    {:ok, keys} = :application.get_all_key(:starweave_finetune)
    {:application, :starweave_finetune, keys}
  end

  defp ok_loaded({:error, {:already_loaded, _}}), do: :ok
  defp ok_loaded(other), do: other

  defp printer do
    shell = Mix.shell()

    spawn_link(fn ->
      Stream.repeatedly(fn ->
        receive do
          {:starweave_distributed, step, %{loss: l, workers: n, allreduce_ms: ms}} when is_integer(step) ->
            shell.info("step #{step}: loss #{fmt(l)}, #{n} workers, all-reduce #{fmt(ms)} ms")

          {:starweave_distributed, :worker_lost, e} ->
            shell.info("worker #{e.worker} (#{e.node}) lost after step #{e.step}: #{inspect(e.reason)}")

          {:starweave_distributed, :rejoining, e} ->
            shell.info("workers #{inspect(e.workers)} are back: taken in at checkpoint #{e.checkpoint}")

          {:starweave_distributed, :resumed, e} ->
            shell.info("continuing from step #{e.step} on workers #{inspect(e.workers)} (#{e.reason})")

          {:starweave_distributed, :eval, d} ->
            shell.info("eval at step #{d["step"]}: loss #{fmt(d["loss"])}")

          _ ->
            :ok
        end
      end)
      |> Stream.run()
    end)
  end

  defp fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 4)
  defp fmt(x), do: inspect(x)
end
