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
    start_supervised!({FineTune, [name: :dist_local, workspace: ws, timeout: 60_000]})

    start_remote(node, :dist_remote, ws)

    for rank <- ["dp", "single"], do: Fixtures.write_dp_config(ws, "#{rank}.json", "runs-#{rank}")

    # the tiny model is generated before both nodes share it: the same run in one sidecar first
    assert {:ok, job} = FineTune.train_start(%{config: "single.json"}, server: :dist_local)
    single = last_loss(job)

    assert {:ok, [%{"status" => "completed", "lastLoss" => loss}, %{"status" => "completed"}]} =
             FineTune.Distributed.train([:dist_local, {:dist_remote, node}], %{config: "dp.json", runs_dir: "runs-dp"})

    assert abs(loss - single) < 1.0e-5 * abs(single)
    adapter = fn rank -> File.read!(Path.join([ws, "runs-dp", "rank-#{rank}", "dp", "adapter", "adapter_model.safetensors"])) end
    assert adapter.(0) == adapter.(1)
  end

  defp start_peer do
    code = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    cookie = [~c"-setcookie", Atom.to_charlist(Node.get_cookie())]
    :peer.start(%{name: :"sw_peer_#{System.unique_integer([:positive])}", host: ~c"127.0.0.1", longnames: true, args: cookie ++ code})
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
      {:starweave_finetune, ^job, %{event: "done", data: %{"lastLoss" => l}}} -> l
      {:starweave_finetune, ^job, %{event: e, data: d}} when e in ["failed", "cancelled"] -> flunk("#{e}: #{inspect(d)}")
      {:starweave_finetune, ^job, _} -> last_loss(job)
    after
      120_000 -> flunk("no end of job #{job}")
    end
  end
end
