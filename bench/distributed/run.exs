# bench:distributed's Elixir side: one data-parallel training run of Starweave.FineTune.Distributed over
# WORKERS BEAM nodes on this machine, the coordinator on this (script's) node. Run by bench/distributed.ts:
#
#   elixir -pa erlang_port/_build/dev/lib/starweave_finetune/ebin bench/distributed/run.exs \
#     WORKSPACE NODE_EXE SIDECAR_JS WORKERS THREADS CONFIG RUNS_DIR ADD_BYTES
#
# This node becomes distributed (epmd, 127.0.0.1, longnames) and starts WORKERS peer nodes with OTP's
# :peer (this node's code path and cookie, as erlang_port/test/distributed_test.exs does); each worker is
# a node name, so the coordinator starts that node's sidecar under its Starweave.FineTune.Sidecars with
# STARWEAVE_NUM_THREADS=THREADS. CONFIG is a run config in WORKSPACE (written by the TS driver).
#
# Prints one JSON line per event (written by hand: Elixir 1.14 has no JSON module):
#   {"event":"step","workers":N,"step":S,"t_ms":T,"loss":L,"tokens":K,"allreduce_ms":A,"by_worker":{"0":A0,...}}
#       (t_ms: when the coordinator's step event reached this process, monotonic ms; by_worker: each agent's
#       time from having its gradients to having the sums; allreduce_ms: the largest)
#   {"event":"add","bytes":B,"ms":M}   for each size in ADD_BYTES (comma-separated, 0: none): the median
#       time of Starweave.FineTune.reduce_add/3 (the ring's per-chunk addition) on worker 0's node, called
#       from that node, as the ring's agents call it
#   {"event":"note","text":"..."}      any other event of the run
#   {"event":"done","workers":N,"ok":true|false,"error":"..."}
[ws, node_exe, script, workers_s, threads, config, runs_dir, add_bytes_s] = System.argv()

defmodule BenchDist do
  alias Starweave.FineTune

  @sidecar :starweave_distributed_sidecar

  def main(ws, node_exe, script, n, threads, config, runs_dir, add_bytes) do
    {_, 0} = System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      {:ok, _} = Node.start(:"sw_bench_dist_#{System.unique_integer([:positive])}@127.0.0.1", :longnames)
    end

    peers = for i <- 1..n, do: start_peer(:"sw_bench_w#{i}_#{System.unique_integer([:positive])}")
    nodes = Enum.map(peers, &elem(&1, 1))

    sidecar = [
      workspace: ws,
      node: node_exe,
      script: script,
      timeout: 600_000,
      log_level: :warning,
      env: [{"STARWEAVE_NUM_THREADS", threads}]
    ]

    me = self()

    task =
      Task.async(fn ->
        FineTune.Distributed.train(nodes, %{config: config, runs_dir: runs_dir},
          notify: me,
          sidecar: sidecar,
          hash_every: 0
        )
      end)

    result = collect(task, n)

    case result do
      {:ok, _} ->
        for bytes <- add_bytes, bytes > 0 do
          emit(~s({"event":"add","bytes":#{bytes},"ms":#{add_ms(hd(nodes), bytes)}}))
        end

        emit(~s({"event":"done","workers":#{n},"ok":true}))

      other ->
        emit(~s({"event":"done","workers":#{n},"ok":false,"error":#{str(inspect(other, limit: 20))}}))
    end

    Enum.each(peers, fn {pid, _} -> :peer.stop(pid) end)
  end

  defp start_peer(name) do
    code = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    cookie = [~c"-setcookie", Atom.to_charlist(Node.get_cookie())]
    {:ok, pid, node} = :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, args: cookie ++ code})
    {pid, node}
  end

  # the coordinator's events until train/3 returns; the step events are stamped when they arrive
  defp collect(%Task{ref: ref} = task, n) do
    receive do
      {:starweave_distributed, step, %{} = d} when is_integer(step) ->
        t = System.monotonic_time(:microsecond) / 1000

        by = d.allreduce_ms_by_worker |> Enum.map(fn {id, ms} -> ~s("#{id}":#{num(ms)}) end) |> Enum.join(",")

        emit(
          ~s({"event":"step","workers":#{d.workers},"step":#{step},"t_ms":#{t},"loss":#{num(d.loss)},) <>
            ~s("tokens":#{num(d.tokens)},"allreduce_ms":#{num(d.allreduce_ms)},"by_worker":{#{by}}})
        )

        collect(task, n)

      {:starweave_distributed, what, d} ->
        emit(~s({"event":"note","text":#{str(inspect({what, d}, limit: 20))}}))
        collect(task, n)

      {^ref, result} ->
        Process.demonitor(ref, [:flush])
        result
    after
      1_800_000 -> {:error, :bench_timeout}
    end
  end

  # median ms of reduce_add over `bytes`-byte f32 binaries, timed on the worker's node (as its agent calls it:
  # :timer.tc runs there; the operands' and the sum's trips between the nodes are not timed)
  defp add_ms(node, bytes) do
    a = :binary.copy(<<0, 0, 128, 63>>, div(bytes, 4))
    b = :binary.copy(<<0, 0, 0, 64>>, div(bytes, 4))
    args = [a, b, [server: {@sidecar, node}, timeout: 120_000]]

    times =
      for _ <- 1..8 do
        {us, {:ok, _}} = :erpc.call(node, :timer, :tc, [FineTune, :reduce_add, args], 600_000)
        us / 1000
      end

    # the first is a warm-up
    times |> tl() |> Enum.sort() |> Enum.at(3)
  end

  defp num(nil), do: "null"
  defp num(x) when is_number(x), do: to_string(x)

  defp str(s), do: ~s(") <> (s |> String.replace("\\", "\\\\") |> String.replace("\"", "\\\"") |> String.replace("\n", " ")) <> ~s(")

  defp emit(line), do: IO.puts(line)
end

add_bytes = for s <- String.split(add_bytes_s, ","), s != "", do: String.to_integer(s)

BenchDist.main(ws, node_exe, script, String.to_integer(workers_s), threads, config, runs_dir, add_bytes)
