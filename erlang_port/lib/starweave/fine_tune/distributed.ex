defmodule Starweave.FineTune.Distributed do
  @moduledoc """
  Synchronous data-parallel LoRA training over the nodes of a BEAM cluster (docs/DISTRIBUTED.md).

  Every worker is a sidecar running the same run config and seed; micro-batch `k` of every step is worker
  `k rem workers`'s, and the workers' gradients are summed by a ring all-reduce over Erlang distribution
  before every worker takes the same optimizer step, so the run's losses are the single-process run's
  (within floating-point tolerance: the sums are ordered differently) and every worker holds the same
  parameters, checked by hash.

  ## Workers

    * a node name (`:"worker@host"`): this module starts a sidecar there, under that node's own
      supervision tree (the application's `Starweave.FineTune.Sidecars`), with the `:sidecar` options
    * a registered server on this node (`:name`) or on another (`{:name, node}`), started by its host

  ## How a step runs

  For each worker an agent process runs on the worker's node: it starts the worker's job (`train.start`
  or `train.resume` with `"parallel" => %{"rank", "workers", "hash_every"}`), and at each step takes the
  job's `"gradients"` event, exchanges the step statistics and parameter hashes with the other agents,
  runs its part of a ring all-reduce of the gradients, in place in the sidecars (a reduce-scatter and an
  all-gather of `workers` ranges, each range crossing the ring once per phase; the f32 additions done by
  the sidecar that holds the range, `Starweave.FineTune.train_chunk/6`) and answers its job with
  `Starweave.FineTune.train_reduce/5`.
  Gradients never pass through the coordinator, which only follows the run.

  ## Faults

    * A worker whose node dies or is cut off, or whose sidecar exits, is dropped: the others are stopped
      at a step boundary (a worker cancelled while it waits for the sums drops that step and writes the
      previous step's checkpoint), the shares are rebalanced over the rest (the rule `k rem workers` with
      the new count; the global batch and the losses do not change) and the run continues from the latest
      checkpoint any of them holds (copied to the workers that lack it).
    * A dropped worker that becomes reachable again (its node reconnects, its sidecar is back) is taken
      back at the next checkpoint that every worker has written (needs `checkpoint.every_steps > 0`).
    * Parameter hashes that differ between workers (checked every `:hash_every` steps) stop the run with
      `{:error, {:parameter_mismatch, step, hashes_by_worker}}` before the step is taken.
    * When the coordinator dies, every agent cancels its job, which stops with a checkpoint; `resume/3`
      (from any node) continues the run from the latest checkpoint on the workers.

  ## Events

  The caller (or `notify:` pid) receives

    * `{:starweave_distributed, step, %{loss: l, tokens: t, workers: n, allreduce_ms: ms,
      allreduce_ms_by_worker: %{id => ms}}}` after every reduced step: each agent's time from having its
      gradients to having the sums (the slowest includes waiting for the slowest worker's compute; the
      fastest, the last to have its gradients, is the ring's own time). After a fault, the steps since the
      checkpoint are run and reported again
    * `{:starweave_distributed, :worker_lost, %{worker: id, node: node, reason: reason, step: s}}`
    * `{:starweave_distributed, :resumed, %{step: checkpoint_step, workers: [id], reason: :lost | :rejoined | :resume}}`
    * `{:starweave_distributed, :eval, data}` (the first worker's held-out evaluations)

  where a worker's id is its position in the list given.
  """

  alias Starweave.FineTune

  @type worker :: node | atom | {atom, node}
  @sidecar_name :starweave_distributed_sidecar

  @doc """
  Runs a training job over `workers` and blocks until it ends.

  `params`: `%{"config" => path}` (a run config in every worker's workspace) and `"runs_dir"` (default
  `".starweave/runs"`; worker `i` writes its run under `runs_dir/worker-i/`).

  Options:

    * `:notify` - the pid that receives the events (default: the caller)
    * `:sidecar` - options of the sidecars started on node workers (`Starweave.FineTune.start_link/1`:
      `:workspace`, `:node`, `:script`, ...), or a function `node -> options`
    * `:hash_every` - check the workers' parameter hashes every this many steps (default 10; 0: never)
    * `:max_restarts` - how many times the run may continue after a lost worker (default 5)
    * `:step_timeout` - ms without any progress after which the run is stopped (default 600_000)

  Returns `{:ok, results}`, one `train.start`/`train.resume` result per worker of the last membership (in
  rank order, each with `"worker" => id`), or `{:error, reason}`: `{:start_failed, id, reason}`,
  `{:worker_failed, id, data}` (its job failed: the same would happen anywhere), `{:worker_down, id,
  reason}` (lost with no worker or restart left), `{:parameter_mismatch, step, hashes}`, `{:timeout, ms}`.
  """
  @spec train([worker, ...], map, keyword) :: {:ok, [map]} | {:error, term}
  def train(workers, params, opts \\ []) when is_list(workers) and workers != [],
    do: run(workers, params, :start, opts)

  @doc """
  Continues a run of `train/3` from the latest checkpoint held by any of `workers` (the same list, in
  the same order, as the run was started with): after the coordinator died, or after the run was
  stopped. `params` as for `train/3` (`"config"` is not needed); `"run"` names the run folder under
  `runs_dir/worker-i/` (default: the newest). Workers that cannot be reached are left out and taken back
  at a checkpoint when they come back. Same options and results as `train/3`.
  """
  @spec resume([worker, ...], map, keyword) :: {:ok, [map]} | {:error, term}
  def resume(workers, params, opts \\ []) when is_list(workers) and workers != [],
    do: run(workers, params, :resume, opts)

  # ------------------------------------------------------------------------------------ the coordinator

  defp run(workers, params, mode, opts) do
    params = Map.new(params, fn {k, v} -> {to_string(k), v} end)
    ids = Enum.to_list(0..(length(workers) - 1))

    st = %{
      specs: workers |> Enum.with_index() |> Map.new(fn {w, i} -> {i, w} end),
      params: params,
      runs_dir: params["runs_dir"] || ".starweave/runs",
      notify: opts[:notify] || self(),
      sidecar: opts[:sidecar] || [],
      hash_every: Keyword.get(opts, :hash_every, 10),
      max_restarts: Keyword.get(opts, :max_restarts, 5),
      step_timeout: opts[:step_timeout] || 600_000,
      restarts: 0,
      gen: nil,
      last_step: 0,
      run_name: params["run"],
      active: [],
      agents: %{},
      steps: %{},
      ckpt_seen: %{},
      results: %{}
    }

    watching = Node.alive?() and :net_kernel.monitor_nodes(true) == :ok

    try do
      run_mode(st, ids, mode, workers)
    catch
      {:distributed_error, reason} -> {:error, reason}
    after
      if watching, do: :net_kernel.monitor_nodes(false)
    end
  end

  defp run_mode(st, ids, mode, workers) do
    case mode do
      :start ->
        with :ok <- ensure_all(st, ids) do
          try do
            st |> launch(ids, :start) |> coordinate()
          catch
            {:start_lost, id, reason} -> {:error, {:start_failed, id, reason}}
          end
        end

      :resume ->
        {up, _down} = Enum.split_with(ids, &(ensure_server(st, &1) == :ok))

        if up == [] do
          {:error, {:no_worker_reachable, workers}}
        else
          Enum.each(up, &wait_idle(st, &1))
          restart(st, up, :resume)
        end
    end
  end

  defp ensure_all(st, ids) do
    Enum.reduce_while(ids, :ok, fn id, :ok ->
      case ensure_server(st, id) do
        :ok -> {:cont, :ok}
        {:error, reason} -> {:halt, {:error, {:start_failed, id, reason}}}
      end
    end)
  end

  # Starts the agents of `ids` (in rank order); `how`: :start, or {:resume, run_dirs}.
  defp launch(st, ids, how) do
    n = length(ids)
    gen = make_ref()

    agents =
      ids
      |> Enum.with_index()
      |> Map.new(fn {id, rank} ->
        parallel = %{"rank" => rank, "workers" => n, "hash_every" => st.hash_every, "inplace" => true}

        start =
          case how do
            :start ->
              {:start,
               st.params
               |> Map.take(["config"])
               |> Map.merge(%{"runs_dir" => worker_dir(st, id), "parallel" => parallel})}

            {:resume, dirs} ->
              {:resume, Map.fetch!(dirs, id), parallel}
          end

        {name, node} = server(st, id)

        pid =
          Node.spawn(node, __MODULE__, :agent, [
            %{coord: self(), gen: gen, id: id, server: name, start: start}
          ])

        {id, %{pid: pid, ref: Process.monitor(pid), job: nil}}
      end)

    st = %{st | gen: gen, active: ids, agents: agents, steps: %{}, ckpt_seen: %{}, results: %{}}
    await_started(st, ids)
  end

  defp await_started(st, []) do
    pids = Enum.map(st.active, &st.agents[&1].pid)
    Enum.each(pids, &send(&1, {:peers, List.to_tuple(pids)}))
    st
  end

  defp await_started(%{gen: gen} = st, waiting) do
    receive do
      {:dist, ^gen, id, {:started, job}} ->
        await_started(put_in(st.agents[id].job, job), List.delete(waiting, id))

      {:dist, ^gen, id, {:start_failed, reason}} ->
        start_lost(st, id, reason)

      {:DOWN, ref, :process, _, reason} ->
        case agent_of(st, ref) do
          nil -> await_started(st, waiting)
          id -> start_lost(st, id, reason)
        end
    after
      st.step_timeout ->
        abort_all(st)
        throw({:distributed_error, {:timeout, st.step_timeout}})
    end
  end

  # a worker that could not start its job (or whose node went): the others are stopped; the caller decides
  # (the first start fails, a restart goes on without it)
  defp start_lost(st, id, reason) do
    Process.demonitor(st.agents[id].ref, [:flush])
    abort_all(%{st | agents: Map.delete(st.agents, id), active: List.delete(st.active, id)})
    throw({:start_lost, id, reason})
  end

  defp coordinate(st) do
    coordinate_loop(st)
  catch
    {:distributed_error, reason} -> {:error, reason}
  end

  defp coordinate_loop(%{gen: gen} = st) do
    receive do
      {:dist, ^gen, id, {:reduced, step, stats, ms}} ->
        st |> on_reduced(id, step, stats, ms) |> coordinate_loop()

      {:dist, ^gen, id, {:run_dir, dir}} ->
        coordinate_loop(
          %{st | run_name: st.run_name || Path.basename(dir)}
          |> put_in([:agents, id, :run_dir], dir)
        )

      {:dist, ^gen, id, {:checkpoint, step, _dir}} ->
        seen = Map.update(st.ckpt_seen, step, MapSet.new([id]), &MapSet.put(&1, id))
        st = %{st | ckpt_seen: seen}

        if MapSet.size(seen[step]) == length(st.active),
          do: st |> maybe_rejoin(step) |> coordinate_loop(),
          else: coordinate_loop(st)

      {:dist, ^gen, id, {:eval, data}} ->
        if id == hd(st.active), do: send(st.notify, {:starweave_distributed, :eval, data})
        coordinate_loop(st)

      {:dist, ^gen, _id, {:hash_mismatch, step, hashes}} ->
        abort_all(st)
        {:error, {:parameter_mismatch, step, hashes}}

      {:dist, ^gen, id, {:ended, "done", %{"status" => status} = result}} when status != "cancelled" ->
        st = %{st | results: Map.put(st.results, id, Map.put(result, "worker", id))}
        Process.demonitor(st.agents[id].ref, [:flush])

        if map_size(st.results) == length(st.active),
          do: {:ok, Enum.map(st.active, &st.results[&1])},
          else: coordinate_loop(st)

      {:dist, ^gen, id, {:ended, "failed", data}} ->
        abort_all(st)
        {:error, {:worker_failed, id, data}}

      {:dist, ^gen, id, {:ended, event, data}} ->
        # the sidecar exited, or the job was cancelled by someone else: the worker is lost
        st |> lost(id, {event, data}) |> coordinate_loop()

      {:DOWN, ref, :process, _, reason} ->
        case agent_of(st, ref) do
          nil -> coordinate_loop(st)
          id -> st |> lost(id, reason) |> coordinate_loop()
        end

      # an earlier membership's last words
      {:dist, _old, _id, _msg} ->
        coordinate_loop(st)

      {:nodeup, _node} ->
        coordinate_loop(st)

      {:nodedown, _node} ->
        coordinate_loop(st)
    after
      st.step_timeout ->
        abort_all(st)
        {:error, {:timeout, st.step_timeout}}
    end
  end

  defp on_reduced(st, id, step, stats, ms) do
    reports = Map.update(st.steps, step, %{id => {stats, ms}}, &Map.put(&1, id, {stats, ms}))

    if map_size(reports[step]) == length(st.active) do
      {[loss_sum, tokens, _rows], _} = reports[step][hd(st.active)]
      by_worker = Map.new(reports[step], fn {id, {_, ms}} -> {id, ms} end)

      send(
        st.notify,
        {:starweave_distributed, step,
         %{
           loss: if(tokens > 0, do: loss_sum / tokens, else: nil),
           tokens: tokens,
           workers: length(st.active),
           allreduce_ms: by_worker |> Map.values() |> Enum.max(),
           allreduce_ms_by_worker: by_worker
         }}
      )

      %{st | steps: Map.delete(reports, step), last_step: step}
    else
      %{st | steps: reports}
    end
  end

  # A worker is gone: stop the others at a step boundary, continue without it from the latest checkpoint.
  defp lost(st, id, reason) do
    {_, node} = server(st, id)

    send(
      st.notify,
      {:starweave_distributed, :worker_lost, %{worker: id, node: node, reason: reason, step: st.last_step}}
    )

    Process.demonitor(st.agents[id].ref, [:flush])
    survivors = List.delete(st.active, id)
    st = %{st | active: survivors, agents: Map.delete(st.agents, id)}
    stop_agents(st, survivors)

    cond do
      survivors == [] ->
        throw({:distributed_error, {:worker_down, id, reason}})

      st.restarts >= st.max_restarts ->
        throw({:distributed_error, {:worker_down, id, reason}})

      true ->
        continue_with(
          %{st | restarts: st.restarts + 1},
          Enum.sort(survivors ++ reachable(st, survivors)),
          :lost
        )
    end
  end

  # After a checkpoint that every worker wrote: take back dropped workers that can be reached again.
  defp maybe_rejoin(st, step) do
    back = reachable(st, st.active)

    if back == [] do
      st
    else
      stop_agents(st, st.active)
      send(st.notify, {:starweave_distributed, :rejoining, %{workers: back, checkpoint: step}})
      continue_with(st, Enum.sort(st.active ++ back), :rejoined)
    end
  end

  defp continue_with(st, ids, why) do
    case restart(st, ids, why) do
      %{} = st -> st
      {:error, reason} -> throw({:distributed_error, reason})
    end
  end

  # Workers not in `active` whose node is connected and whose sidecar is (or can be) running.
  defp reachable(st, active) do
    connected = [node() | Node.list()]

    st.specs
    |> Map.keys()
    |> Enum.reject(&(&1 in active))
    |> Enum.filter(fn id -> elem(server(st, id), 1) in connected and ensure_server(st, id) == :ok end)
  end

  # (Re)starts `ids` from the latest checkpoint any of them holds, copied to those that lack it (a worker
  # that cannot be reached while this happens is left out, to be taken back later). Returns the
  # coordinator's state when called from the loop (:lost, :rejoined), or the run's result.
  defp restart(st, ids, why) do
    with {:ok, name} <- run_name(st, ids),
         {:ok, dirs, step} <- place_checkpoint(st, ids, name) do
      ids = Enum.filter(ids, &Map.has_key?(dirs, &1))
      send(st.notify, {:starweave_distributed, :resumed, %{step: step, workers: ids, reason: why}})

      try do
        st = launch(%{st | run_name: name}, ids, {:resume, dirs})
        if why == :resume, do: coordinate(st), else: st
      catch
        {:start_lost, id, reason} ->
          {_, node} = server(st, id)

          send(
            st.notify,
            {:starweave_distributed, :worker_lost, %{worker: id, node: node, reason: reason, step: step}}
          )

          case List.delete(ids, id) do
            [] -> {:error, {:worker_down, id, reason}}
            rest -> restart(st, rest, why)
          end
      end
    end
  catch
    {:distributed_error, reason} -> {:error, reason}
  end

  defp run_name(%{run_name: name}, _ids) when is_binary(name), do: {:ok, name}

  defp run_name(st, ids) do
    ids
    |> Enum.flat_map(fn id ->
      with {:ok, dir} <- abs_path(st, id, worker_dir(st, id)),
           {:ok, runs} <- rpc(st, id, __MODULE__, :list_runs, [dir]),
           do: runs,
           else: (_ -> [])
    end)
    |> Enum.max_by(fn {_name, mtime} -> mtime end, fn -> nil end)
    |> case do
      nil -> {:error, {:no_run, st.runs_dir}}
      {name, _} -> {:ok, name}
    end
  end

  # Every reachable worker of `ids` gets the newest checkpoint found on any of them (and the run's
  # config.json); returns the run folders of those that have it.
  defp place_checkpoint(st, ids, name) do
    found =
      for id <- ids,
          rel = Path.join(worker_dir(st, id), name),
          {:ok, dir} <- [abs_path(st, id, rel)],
          {:ok, steps} <- [rpc(st, id, __MODULE__, :list_checkpoints, [dir])],
          into: %{},
          do: {id, %{rel: rel, dir: dir, steps: steps}}

    holders = for {id, %{steps: [_ | _] = steps}} <- found, do: {id, Enum.max(steps)}

    case Enum.sort_by(holders, &elem(&1, 1), :desc) do
      [] ->
        {:error, {:no_checkpoint, name}}

      [{_, step} | _] = sorted ->
        # the first holder of that step that can be read
        files =
          Enum.find_value(sorted, fn {from, s} ->
            s == step && ok_or(rpc(st, from, __MODULE__, :read_checkpoint, [found[from].dir, step]), nil)
          end)

        if files == nil do
          {:error, {:checkpoint_unreadable, name, step}}
        else
          placed =
            for {id, w} <- found,
                step in w.steps or rpc(st, id, __MODULE__, :write_checkpoint, [w.dir, step, files]) == :ok,
                into: %{},
                do: {id, w.rel}

          {:ok, placed, step}
        end
    end
  end

  defp stop_agents(st, ids) do
    Enum.each(ids, &send(st.agents[&1].pid, :abort))
    await_ended(st, MapSet.new(ids))
  end

  defp abort_all(st), do: stop_agents(st, Enum.filter(st.active, &Map.has_key?(st.agents, &1)))

  defp await_ended(%{gen: gen} = st, waiting) do
    if MapSet.size(waiting) == 0 do
      :ok
    else
      receive do
        {:dist, ^gen, id, {:ended, _, _}} ->
          Process.demonitor(st.agents[id].ref, [:flush])
          await_ended(st, MapSet.delete(waiting, id))

        {:DOWN, ref, :process, _, _} ->
          case agent_of(st, ref) do
            nil -> await_ended(st, waiting)
            id -> await_ended(st, MapSet.delete(waiting, id))
          end
      after
        st.step_timeout -> :ok
      end
    end
  end

  defp agent_of(st, ref), do: Enum.find_value(st.agents, fn {id, a} -> if a.ref == ref, do: id end)

  # --------------------------------------------------------------------------------- workers' servers

  defp server(st, id) do
    case st.specs[id] do
      {name, node} when is_atom(name) and is_atom(node) -> {name, node}
      a when is_atom(a) -> if node_name?(a), do: {@sidecar_name, a}, else: {a, node()}
    end
  end

  defp node_name?(a) when is_atom(a), do: a |> Atom.to_string() |> String.contains?("@")
  defp node_name?(_), do: false

  defp ensure_server(st, id) do
    {name, node} = server(st, id)

    if node_name?(st.specs[id]) do
      opts = if is_function(st.sidecar, 1), do: st.sidecar.(node), else: st.sidecar
      rpc_node(node, __MODULE__, :ensure_sidecar, [name, opts])
    else
      case rpc_node(node, Process, :whereis, [name]) do
        pid when is_pid(pid) -> :ok
        nil -> {:error, {:no_server, name, node}}
        {:error, _} = e -> e
      end
    end
  end

  # waits until the worker's sidecar runs no training job (a coordinator that died leaves jobs stopping)
  defp wait_idle(st, id, tries \\ 600) do
    {name, node} = server(st, id)

    busy =
      case FineTune.jobs(server: {name, node}) do
        {:ok, jobs} ->
          Enum.any?(jobs, &(&1["status"] == "running" and &1["method"] in ["train.start", "train.resume"]))

        _ ->
          false
      end

    if busy and tries > 0, do: Process.sleep(100) && wait_idle(st, id, tries - 1), else: :ok
  end

  defp worker_dir(st, id), do: Path.join(st.runs_dir, "worker-#{id}")

  defp abs_path(st, id, rel) do
    {name, node} = server(st, id)
    {:ok, Path.expand(rel, FineTune.workspace(server: {name, node}))}
  catch
    :exit, reason -> {:error, {:no_server, server(st, id), reason}}
  end

  defp rpc(st, id, m, f, a), do: rpc_node(elem(server(st, id), 1), m, f, a)

  defp rpc_node(node, m, f, a) when node == node(), do: apply(m, f, a)

  defp rpc_node(node, m, f, a) do
    :erpc.call(node, m, f, a, 60_000)
  catch
    :error, {:erpc, reason} -> {:error, {:nodedown, node, reason}}
    kind, reason -> {:error, {kind, reason}}
  end

  defp ok_or({:ok, v}, _), do: v
  defp ok_or(_, default), do: default

  # ------------------------------------------------------------ run on the workers' nodes (by :erpc)

  @doc false
  # The node's sidecar for distributed runs, under the application's DynamicSupervisor.
  def ensure_sidecar(name, opts) do
    with {:ok, _} <- Application.ensure_all_started(:starweave_finetune) do
      case Process.whereis(name) do
        nil ->
          spec = Supervisor.child_spec({FineTune, Keyword.put(opts, :name, name)}, restart: :transient)

          case DynamicSupervisor.start_child(Starweave.FineTune.Sidecars, spec) do
            {:ok, _} -> :ok
            {:error, {:already_started, _}} -> :ok
            {:error, reason} -> {:error, reason}
          end

        _ ->
          :ok
      end
    end
  end

  @doc false
  def list_runs(dir) do
    case File.ls(dir) do
      {:ok, names} ->
        {:ok,
         for n <- names, File.regular?(Path.join([dir, n, "config.json"])) do
           {n, File.stat!(Path.join(dir, n), time: :posix).mtime}
         end}

      _ ->
        {:ok, []}
    end
  end

  @doc false
  def list_checkpoints(run_dir) do
    case File.ls(Path.join(run_dir, "checkpoints")) do
      {:ok, names} -> {:ok, for("step-" <> n <- names, {i, ""} <- [Integer.parse(n)], do: i)}
      _ -> {:ok, []}
    end
  end

  @doc false
  # the run's config.json and one checkpoint's files, to be written on another worker
  def read_checkpoint(run_dir, step) do
    ck = Path.join([run_dir, "checkpoints", step_dir(step)])

    {:ok,
     %{
       config: File.read!(Path.join(run_dir, "config.json")),
       files: for(f <- File.ls!(ck), File.regular?(Path.join(ck, f)), do: {f, File.read!(Path.join(ck, f))})
     }}
  end

  @doc false
  # written beside, then renamed into place: a checkpoint is whole or absent
  def write_checkpoint(run_dir, step, %{config: config, files: files}) do
    ck = Path.join([run_dir, "checkpoints", step_dir(step)])
    tmp = ck <> ".copy-#{System.unique_integer([:positive])}"
    File.mkdir_p!(tmp)

    unless File.regular?(Path.join(run_dir, "config.json")),
      do: File.write!(Path.join(run_dir, "config.json"), config)

    Enum.each(files, fn {f, data} -> File.write!(Path.join(tmp, f), data) end)
    File.rm_rf!(ck)
    File.rename!(tmp, ck)
    :ok
  end

  defp step_dir(step), do: "step-" <> String.pad_leading(Integer.to_string(step), 8, "0")

  # ---------------------------------------------------------------------------------------- the agent

  @doc false
  # One worker's agent, on the worker's node: starts its job, runs its part of every step's all-reduce.
  def agent(%{coord: coord, gen: gen, id: id, server: server, start: start}) do
    cref = Process.monitor(coord)

    started =
      case start do
        {:start, params} ->
          FineTune.train_start(params, server: server, timeout: 120_000)

        {:resume, run_dir, parallel} ->
          FineTune.train_resume(run_dir, server: server, parallel: parallel, timeout: 120_000)
      end

    case started do
      {:ok, job} ->
        st = %{
          coord: coord,
          gen: gen,
          cref: cref,
          id: id,
          server: server,
          job: job,
          stopping: false,
          coord_alive: true
        }

        tell(st, {:started, job})

        receive do
          {:peers, pids} ->
            agent_loop(Map.merge(st, %{peers: pids, n: tuple_size(pids), rank: index_of(pids, self())}))

          :abort ->
            stop_job(st)

          {:DOWN, ^cref, :process, _, _} ->
            stop_job(%{st | coord_alive: false})
        end

      {:error, reason} ->
        send(coord, {:dist, gen, id, {:start_failed, reason}})
    end
  end

  defp tell(st, msg), do: send(st.coord, {:dist, st.gen, st.id, msg})

  defp index_of(tuple, x), do: Enum.find_index(Tuple.to_list(tuple), &(&1 == x))

  defp agent_loop(%{job: job} = st) do
    receive do
      {:starweave_finetune, ^job, %{event: "gradients", data: d}} ->
        if st.stopping, do: agent_loop(st), else: agent_step(st, d)

      {:starweave_finetune, ^job, %{event: "start", data: d}} ->
        tell(st, {:run_dir, d["runDir"]})
        agent_loop(st)

      {:starweave_finetune, ^job, %{event: "checkpoint", data: d}} ->
        tell(st, {:checkpoint, d["step"], d["dir"]})
        agent_loop(st)

      {:starweave_finetune, ^job, %{event: "eval", data: d}} ->
        tell(st, {:eval, d})
        agent_loop(st)

      {:starweave_finetune, ^job, %{event: e, data: d}}
      when e in ["done", "failed", "cancelled", "sidecar_exited"] ->
        tell(st, {:ended, e, d})

      {:starweave_finetune, ^job, _} ->
        agent_loop(st)

      :abort ->
        stop_job(st)

      {:DOWN, cref, :process, _, _} when cref == st.cref ->
        stop_job(%{st | coord_alive: false})
    end
  end

  defp agent_step(st, %{"step" => step, "length" => floats, "stats" => stats} = d) do
    t0 = System.monotonic_time(:microsecond)
    {all_stats, hashes} = exchange_small(st, step, stats, d["paramHash"])

    if hashes != %{} and hashes |> Map.values() |> Enum.uniq() |> length() > 1 do
      tell(st, {:hash_mismatch, step, hashes})
      stop_job(st)
    else
      ring_all_reduce(st, step, floats)
      stats_sum = Enum.zip_with(all_stats, &Enum.sum/1)
      ms = (System.monotonic_time(:microsecond) - t0) / 1000

      case FineTune.train_reduce(st.job, step, nil, stats_sum, server: st.server, timeout: 120_000) do
        {:ok, _} ->
          tell(st, {:reduced, step, stats_sum, ms})
          agent_loop(st)

        {:error, _} ->
          # the job ended under us (cancelled, sidecar gone): its end event says how
          agent_loop(%{st | stopping: true})
      end
    end
  catch
    :stop -> stop_job(st)
    :coordinator_down -> stop_job(%{st | coord_alive: false})
  end

  # every worker's step statistics (in rank order) and parameter hashes (by worker id), from all to all
  defp exchange_small(st, step, stats, hash) do
    for r <- 0..(st.n - 1),
        r != st.rank,
        do: send(elem(st.peers, r), {:ring_small, step, st.rank, st.id, stats, hash})

    got =
      Enum.reduce(1..(st.n - 1)//1, %{st.rank => {st.id, stats, hash}}, fn _, acc ->
        receive do
          {:ring_small, ^step, r, id, s, h} -> Map.put(acc, r, {id, s, h})
          :abort -> throw(:stop)
          {:DOWN, cref, :process, _, _} when cref == st.cref -> throw(:coordinator_down)
        end
      end)

    ordered = Enum.map(0..(st.n - 1), &got[&1])
    {Enum.map(ordered, &elem(&1, 1)), for({id, _, h} <- ordered, h != nil, into: %{}, do: {id, h})}
  end

  # Ring all-reduce, in place in the sidecars: the job's gradient vector (`floats` f32 values) is cut into
  # `n` ranges. Reduce-scatter: rank r sends range r (read from its sidecar), then n-1 times adds the range
  # its left neighbour sent into its own (`train.chunk` add: the sidecar returns the sum) and passes that
  # sum on; after it rank r holds the whole sum of range (r + 1) rem n. All-gather: the summed ranges go
  # round n-1 times, each written into the sidecar's vector (`train.chunk` set). Each range is summed
  # once, by one sidecar, so every worker ends with the same bits; per worker and step the port carries
  # (3n - 2)/n of the gradient bytes, and Erlang distribution 2(n - 1)/n.
  defp ring_all_reduce(%{n: 1}, _step, _floats), do: :ok

  defp ring_all_reduce(st, step, floats) do
    n = st.n
    right = elem(st.peers, rem(st.rank + 1, n))
    range = fn i -> {div(i * floats, n), div((i + 1) * floats, n)} end

    chunk = fn i, op ->
      {from, to} = range.(i)
      FineTune.train_chunk(st.job, step, from, to, op, server: st.server, timeout: 120_000)
    end

    own =
      case chunk.(st.rank, :get) do
        {:ok, c} -> c
        {:error, _} -> throw(:stop)
      end

    summed =
      Enum.reduce(0..(n - 2), own, fn s, out ->
        send(right, {:ring, step, :scatter, s, out})
        bin = await_ring(st, step, :scatter, s)

        case chunk.(Integer.mod(st.rank - s - 1, n), {:add, bin}) do
          {:ok, sum} -> sum
          {:error, _} -> throw(:stop)
        end
      end)

    Enum.reduce(0..(n - 2), summed, fn s, out ->
      send(right, {:ring, step, :gather, s, out})
      bin = await_ring(st, step, :gather, s)

      case chunk.(Integer.mod(st.rank - s, n), {:set, bin}) do
        {:ok, :ok} -> bin
        {:error, _} -> throw(:stop)
      end
    end)

    :ok
  end

  defp await_ring(st, step, phase, s) do
    receive do
      {:ring, ^step, ^phase, ^s, bin} -> bin
      :abort -> throw(:stop)
      {:DOWN, cref, :process, _, _} when cref == st.cref -> throw(:coordinator_down)
    end
  end

  # Cancel the job (it stops at a step boundary with a checkpoint) and wait for its end; tell the
  # coordinator unless it is gone.
  defp stop_job(%{job: job} = st) do
    FineTune.train_cancel(job, server: st.server)
    agent_drain(st)
  end

  defp agent_drain(%{job: job} = st) do
    receive do
      {:starweave_finetune, ^job, %{event: e, data: d}}
      when e in ["done", "failed", "cancelled", "sidecar_exited"] ->
        if st.coord_alive, do: tell(st, {:ended, e, d})

      {:DOWN, cref, :process, _, _} when cref == st.cref ->
        agent_drain(%{st | coord_alive: false})

      _other ->
        agent_drain(st)
    after
      600_000 -> :ok
    end
  end
end
