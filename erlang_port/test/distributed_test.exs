defmodule Starweave.FineTune.DistributedTest do
  # Data parallelism across BEAM nodes: this test's node becomes distributed, OTP's :peer starts a second
  # node with this project's code, each node runs a sidecar under its own supervisor, and
  # Distributed.train coordinates one run over both (calls, events and gradient binaries cross Erlang
  # distribution). The run's last loss is the single-sidecar run's within 1e-5 and both nodes write the
  # same adapter.
  use ExUnit.Case, async: false

  alias Starweave.FineTune
  alias Starweave.FineTune.Test.Fixtures

  @moduletag timeout: 180_000

  setup_all do
    {_, 0} = System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      {:ok, _} = Node.start(:"sw_test_#{System.unique_integer([:positive])}@127.0.0.1", :longnames)
    end

    :ok
  end

  setup do
    ws = Path.join(System.tmp_dir!(), "sw-ex-dist-#{System.unique_integer([:positive])}")
    File.mkdir_p!(ws)
    on_exit(fn -> File.rm_rf!(ws) end)
    {:ok, ws: ws}
  end

  # each test its own peer node: when a node dies, 'global' may cut this node's other connections
  # (prevent_overlapping_partitions), so no peer is shared between tests
  test "one run over two nodes: the single-sidecar loss, one adapter", %{ws: ws} do
    {:ok, peer, node} = start_peer()
    on_exit(fn -> :peer.stop(peer) end)
    start_sidecars([:dist_local], ws)

    start_remote(node, :dist_remote, ws)

    for rank <- ["dp", "single"], do: Fixtures.write_dp_config(ws, "#{rank}.json", "runs-#{rank}")

    # the tiny model is generated before both nodes share it: the same run in one sidecar first
    assert {:ok, job} = FineTune.train_start(%{config: "single.json"}, server: :dist_local)
    single = last_loss(job)

    assert {:ok, [%{"status" => "completed", "lastLoss" => loss}, %{"status" => "completed"}]} =
             FineTune.Distributed.train([:dist_local, {:dist_remote, node}], %{
               config: "dp.json",
               runs_dir: "runs-dp"
             })

    assert abs(loss - single) < 1.0e-5 * abs(single)

    assert_one_adapter(ws, 0..1)
  end

  test "three workers, ring all-reduce: every step's loss is the single-sidecar run's, one adapter; hashes checked",
       %{ws: ws} do
    start_sidecars([:r_a, :r_b, :r_c], ws)

    over = %{training: %{max_steps: 4, grad_accum: 3}}
    single = single_run(ws, over, :r_a)

    assert {:ok, results} =
             FineTune.Distributed.train([:r_a, :r_b, :r_c], %{config: "dp.json", runs_dir: "runs-dp"},
               hash_every: 1
             )

    assert [%{"worker" => 0, "status" => "completed"}, %{"worker" => 1}, %{"worker" => 2}] = results

    for step <- 1..4 do
      assert_received {:starweave_distributed, ^step,
                       %{
                         loss: loss,
                         workers: 3,
                         allreduce_ms: ms,
                         allreduce_ms_by_worker: %{0 => _, 1 => _, 2 => _}
                       }}
                      when is_number(ms)

      assert abs(loss - single[step]) < 1.0e-5 * abs(single[step])
    end

    assert_one_adapter(ws, 0..2)
  end

  test "workers whose parameters differ (another LoRA init) are stopped before the first step", %{ws: ws} do
    ws2 = ws <> "-other"
    File.mkdir_p!(ws2)
    on_exit(fn -> File.rm_rf!(ws2) end)

    start_sidecars([:h_a], ws)

    start_sidecars([:h_b], ws2)

    Fixtures.write_dp_config(ws, "dp.json", "runs-dp")
    Fixtures.write_dp_config(ws2, "dp.json", "runs-dp", %{lora: %{init_seed: 99}})

    assert {:error, {:parameter_mismatch, 1, %{0 => h0, 1 => h1}}} =
             FineTune.Distributed.train([:h_a, :h_b], %{config: "dp.json", runs_dir: "runs-dp"}, hash_every: 5)

    assert h0 != h1
    # both stopped without taking step 1: their checkpoints are step 0's
    for dir <- [ws, ws2],
        do:
          assert(
            File.ls!(
              Path.join([dir, "runs-dp", "worker-#{if dir == ws, do: 0, else: 1}", "dp", "checkpoints"])
            ) == ["step-00000000"]
          )
  end

  test "a worker's node killed mid-run: dropped, rebalanced, continued from the checkpoint; back at a checkpoint when it returns; the single-run losses",
       %{ws: ws} do
    peer_name = :"sw_peer_#{System.unique_integer([:positive])}"
    {:ok, peer, node} = start_peer(peer_name)
    on_exit(fn -> stop_peer(peer) end)

    start_sidecars([:k_a, :k_b], ws)

    over = %{training: %{max_steps: 80, grad_accum: 3}, checkpoint: %{every_steps: 2, keep_last: 3}}
    single = single_run(ws, over, :k_a)

    me = self()
    # the third worker is a node: the coordinator starts its sidecar under that node's supervision tree
    coordinator =
      Task.async(fn ->
        FineTune.Distributed.train([:k_a, :k_b, node], %{config: "dp.json", runs_dir: "runs-dp"},
          notify: me,
          sidecar: [workspace: ws, timeout: 60_000],
          hash_every: 2
        )
      end)

    assert_receive {:starweave_distributed, 3, %{workers: 3}}, 60_000
    os_pid = :erpc.call(node, :os, :getpid, [])
    {_, 0} = System.cmd("kill", ["-9", to_string(os_pid)])

    assert_receive {:starweave_distributed, :worker_lost, %{worker: 2, node: ^node}}, 60_000
    assert_receive {:starweave_distributed, :resumed, %{reason: :lost, workers: [0, 1], step: from}}, 60_000
    assert from >= 2

    # the node comes back (same name): it is taken back at the next checkpoint
    {:ok, peer2, ^node} = restart_peer(peer_name)
    on_exit(fn -> stop_peer(peer2) end)

    assert_receive {:starweave_distributed, :resumed, %{reason: :rejoined, workers: [0, 1, 2], step: back}},
                   60_000

    assert back > from

    assert {:ok, results} = Task.await(coordinator, 120_000)

    assert [%{"worker" => 0, "status" => "completed", "steps" => 80}, %{"worker" => 1}, %{"worker" => 2}] =
             results

    # the losses of the steps each membership ran are the single run's (the workers' metrics agree)
    for w <- 0..2 do
      losses = Fixtures.train_losses(Path.join([ws, "runs-dp", "worker-#{w}", "dp"]))
      assert Map.keys(losses) |> Enum.sort() |> List.last() == 80

      for {step, l} <- losses,
          do: assert(abs(l - single[step]) < 1.0e-5 * abs(single[step]), "worker #{w} step #{step}")
    end

    assert_one_adapter(ws, 0..2)
  end

  test "a worker's node cut off (disconnected) mid-run: dropped; taken back once the connection heals", %{
    ws: ws
  } do
    # the peer's control channel over stdio: by default :peer controls it over distribution and halts it
    # when that connection goes, which would make this a node's death, not a partition
    {:ok, peer, node} =
      start_peer(:"sw_peer_#{System.unique_integer([:positive])}", :code.get_path(), :standard_io)

    true = Node.connect(node)
    on_exit(fn -> stop_peer(peer) end)

    start_sidecars([:p_a], ws)

    start_remote(node, :p_remote, ws)
    over = %{training: %{max_steps: 80, grad_accum: 2}, checkpoint: %{every_steps: 2, keep_last: 3}}
    single = single_run(ws, over, :p_a)

    me = self()

    coordinator =
      Task.async(fn ->
        FineTune.Distributed.train([:p_a, {:p_remote, node}], %{config: "dp.json", runs_dir: "runs-dp"},
          notify: me
        )
      end)

    assert_receive {:starweave_distributed, 3, %{workers: 2}}, 60_000
    # a partition: the connection to the worker's node goes, the node and its sidecar live on
    true = Node.disconnect(node)

    assert_receive {:starweave_distributed, :worker_lost, %{worker: 1, node: ^node, reason: :noconnection}},
                   60_000

    assert_receive {:starweave_distributed, :resumed, %{reason: :lost, workers: [0]}}, 60_000
    # the partition heals (the first attempts may come before the peer has let go of the old connection)
    assert :ok = wait_for(fn -> Node.connect(node) == true end)
    assert_receive {:starweave_distributed, :resumed, %{reason: :rejoined, workers: [0, 1]}}, 60_000

    assert {:ok, [%{"status" => "completed", "steps" => 80}, %{"status" => "completed", "steps" => 80}]} =
             Task.await(coordinator, 120_000)

    for w <- 0..1,
        {step, l} <- Fixtures.train_losses(Path.join([ws, "runs-dp", "worker-#{w}", "dp"])),
        do: assert(abs(l - single[step]) < 1.0e-5 * abs(single[step]), "worker #{w} step #{step}")
  end

  test "the coordinator dies: the workers stop at a checkpoint, and resume/3 from another node continues the run with the single-run losses",
       %{ws: ws} do
    {:ok, peer, other} = start_peer()
    on_exit(fn -> stop_peer(peer) end)

    start_sidecars([:c_a, :c_b], ws)

    over = %{training: %{max_steps: 12, grad_accum: 2}}
    single = single_run(ws, over, :c_a)

    kill_coordinator_at([:c_a, :c_b], 2)
    me = self()

    # the new coordinator runs on another node of the cluster, with the workers named from there
    here = node()

    assert {:ok, results} =
             :erpc.call(
               other,
               FineTune.Distributed,
               :resume,
               [[{:c_a, here}, {:c_b, here}], %{runs_dir: "runs-dp"}, [notify: me]],
               120_000
             )

    assert_received {:starweave_distributed, :resumed, %{reason: :resume, workers: [0, 1], step: from}}
    assert from in 1..11

    assert [%{"status" => "completed", "steps" => 12, "lastLoss" => loss}, %{"status" => "completed"}] =
             results

    assert abs(loss - single[12]) < 1.0e-5 * abs(single[12])
  end

  test "mix starweave.train --nodes: the run over a node without this application's code (loaded from here)",
       %{ws: ws} do
    # the peer gets Elixir's code paths but not this project's: the task loads the application there
    own = :code.lib_dir(:starweave_finetune) |> to_string()
    paths = Enum.reject(:code.get_path(), &String.starts_with?(to_string(&1), own))
    {:ok, peer, node} = start_peer(:"sw_peer_#{System.unique_integer([:positive])}", paths)
    on_exit(fn -> stop_peer(peer) end)
    assert :erpc.call(node, :code, :which, [FineTune.Distributed]) == :non_existing
    Fixtures.write_dp_config(ws, "dp.json", "runs-dp")

    out =
      ExUnit.CaptureIO.capture_io(fn ->
        Mix.Tasks.Starweave.Train.run([
          "--nodes",
          "#{node}",
          "--config",
          "dp.json",
          "--runs-dir",
          "runs-cli",
          "--workspace",
          ws,
          "--hash-every",
          "1"
        ])
      end)

    assert out =~ ~r/step 3: loss \d+\.\d{4}, 1 workers, all-reduce/
    assert out =~ ~r{worker 0: completed, 3/3 steps, last loss \d+\.\d+, run runs-cli/worker-0/dp}

    assert File.regular?(
             Path.join([ws, "runs-cli", "worker-0", "dp", "adapter", "adapter_model.safetensors"])
           )

    assert_raise Mix.Error, ~r/'nope' is not a node name/, fn ->
      Mix.Tasks.Starweave.Train.run(["--nodes", "nope", "--config", "dp.json"])
    end

    assert_raise Mix.Error, ~r/cannot connect to ghost@127.0.0.1/, fn ->
      Mix.Tasks.Starweave.Train.run(["--nodes", "ghost@127.0.0.1", "--config", "dp.json"])
    end

    assert_raise Mix.Error, ~r/--config FILE is required/, fn ->
      Mix.Tasks.Starweave.Train.run(["--nodes", "#{node}"])
    end
  end

  test "resume/3 with a worker gone: the run continues on the others from the newest checkpoint", %{ws: ws} do
    start_sidecars([:g_a, :g_b], ws)

    over = %{training: %{max_steps: 12, grad_accum: 2}, checkpoint: %{every_steps: 3}}
    single = single_run(ws, over, :g_a)

    kill_coordinator_at([:g_a, :g_b], 4)
    # worker 1's sidecar goes too (after its job has stopped with a checkpoint)
    assert :ok = wait_for(fn -> match?({:ok, [_ | _]}, FineTune.jobs(server: :g_b)) and not busy?(:g_b) end)
    stop_supervised!(:g_b)

    assert {:ok, [%{"worker" => 0, "status" => "completed", "steps" => 12, "lastLoss" => loss}]} =
             FineTune.Distributed.resume([:g_a, :g_b], %{runs_dir: "runs-dp"})

    assert_received {:starweave_distributed, :resumed, %{reason: :resume, workers: [0], step: from}}
    assert from >= 3
    assert abs(loss - single[12]) < 1.0e-5 * abs(single[12])
  end

  # Every worker of the run in runs-dp wrote the same adapter, byte for byte.
  defp assert_one_adapter(ws, workers) do
    adapters =
      for w <- workers,
          do:
            File.read!(
              Path.join([ws, "runs-dp", "worker-#{w}", "dp", "adapter", "adapter_model.safetensors"])
            )

    assert length(Enum.uniq(adapters)) == 1
  end

  # Sidecars on this node, one per name, all in the test's workspace.
  defp start_sidecars(names, ws) do
    for n <- names,
        do:
          start_supervised!(
            Supervisor.child_spec({FineTune, [name: n, workspace: ws, timeout: 60_000]}, id: n)
          )
  end

  # Writes dp.json and single.json (the config with `over` merged), runs single.json alone on `server` and
  # returns its train losses by step: what every data-parallel run of dp.json must reproduce.
  defp single_run(ws, over, server) do
    for f <- ["dp", "single"], do: Fixtures.write_dp_config(ws, "#{f}.json", "runs-#{f}", over)
    assert {:ok, job} = FineTune.train_start(%{config: "single.json"}, server: server)
    last_loss(job)
    Fixtures.train_losses(Path.join([ws, "runs-single", "dp"]))
  end

  # A coordinator of dp.json over `workers`, killed once it has reported `step` (to the caller).
  defp kill_coordinator_at(workers, step) do
    me = self()

    {pid, ref} =
      spawn_monitor(fn ->
        FineTune.Distributed.train(workers, %{config: "dp.json", runs_dir: "runs-dp"}, notify: me)
      end)

    assert_receive {:starweave_distributed, ^step, _}, 60_000
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, :process, _, :killed}
  end

  defp busy?(server) do
    {:ok, jobs} = FineTune.jobs(server: server)
    Enum.any?(jobs, &(&1["status"] == "running"))
  end

  defp start_peer(
         name \\ :"sw_peer_#{System.unique_integer([:positive])}",
         paths \\ :code.get_path(),
         connection \\ nil
       ) do
    code = Enum.flat_map(paths, &[~c"-pa", &1])
    cookie = [~c"-setcookie", Atom.to_charlist(Node.get_cookie())]
    opts = %{name: name, host: ~c"127.0.0.1", longnames: true, args: cookie ++ code}
    :peer.start(if connection, do: Map.put(opts, :connection, connection), else: opts)
  end

  # a peer already gone (killed) is fine
  defp stop_peer(peer) do
    :peer.stop(peer)
  catch
    _, _ -> :ok
  end

  # the same node name again, once the killed node has left epmd
  defp restart_peer(name, tries \\ 50) do
    case start_peer(name) do
      {:ok, _, _} = ok -> ok
      _ when tries > 0 -> Process.sleep(100) && restart_peer(name, tries - 1)
      other -> other
    end
  end

  # A sidecar on `node` under a supervisor held by a process of that node (evaluated there: this test
  # module's code is not loaded on the peer).
  defp start_remote(node, name, ws) do
    {_, _} =
      :erpc.call(node, Code, :eval_string, [
        """
        spawn(fn ->
          {:ok, _} = Supervisor.start_link([{Starweave.FineTune, [name: #{inspect(name)}, workspace: #{inspect(ws)}, timeout: 60_000]}], strategy: :one_for_one)
          Process.sleep(:infinity)
        end)
        """
      ])

    assert :ok = wait_for(fn -> is_pid(:erpc.call(node, Process, :whereis, [name])) end)
  end

  defp wait_for(fun, tries \\ 100) do
    cond do
      fun.() -> :ok
      tries == 0 -> :gave_up
      true -> Process.sleep(50) && wait_for(fun, tries - 1)
    end
  end

  defp last_loss(job) do
    receive do
      {:starweave_finetune, ^job, %{event: "done", data: %{"lastLoss" => l}}} ->
        l

      {:starweave_finetune, ^job, %{event: e, data: d}} when e in ["failed", "cancelled"] ->
        flunk("#{e}: #{inspect(d)}")

      {:starweave_finetune, ^job, _} ->
        last_loss(job)
    after
      120_000 -> flunk("no end of job #{job}")
    end
  end
end
