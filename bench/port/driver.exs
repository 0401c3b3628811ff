# bench:port's Elixir side: the same round trips through three ports, from one BEAM, in one run.
# Prints one JSON line per measurement: {"target","case","value"}.
[node, script, raw_echo, json_bridge, workspace, pings_s, mibs_s] = System.argv()
pings = String.to_integer(pings_s)
mibs = String.to_integer(mibs_s)
mib = :binary.copy(<<0xAB>>, 1_048_576)

defmodule Bench do
  def time_us(fun) do
    t0 = System.monotonic_time(:nanosecond)
    fun.()
    (System.monotonic_time(:nanosecond) - t0) / 1000
  end

  def latencies(n, fun) do
    for _ <- 1..2000, do: fun.()
    Enum.map(1..n, fn _ -> time_us(fun) end) |> Enum.sort()
  end

  def pct(sorted, p), do: Enum.at(sorted, min(length(sorted) - 1, floor(p * length(sorted))))

  # MiB/s of payload: n round trips of a 1 MiB payload
  def throughput(n, fun) do
    for _ <- 1..3, do: fun.()
    us = time_us(fn -> for _ <- 1..n, do: fun.() end)
    n / (us / 1_000_000)
  end

  def emit(target, kase, value), do: IO.puts(~s({"target":"#{target}","case":"#{kase}","value":#{value}}))

  # JSON-lines port: read until a whole line
  def recv_line(port, acc \\ []) do
    receive do
      {^port, {:data, {:eol, l}}} -> IO.iodata_to_binary([acc, l])
      {^port, {:data, {:noeol, l}}} -> recv_line(port, [acc, l])
    after
      10_000 -> raise "json bridge: no reply"
    end
  end
end

# ours: the public API through the GenServer and the sidecar
{:ok, _} =
  Starweave.FineTune.start_link(node: node, script: script, workspace: workspace, name: :bench, log_level: :warning)

ours_ping = fn -> {:ok, _} = Starweave.FineTune.ping(server: :bench) end
bin = %Starweave.FineTune.MsgPack.Bin{data: mib}
ours_mib = fn -> {:ok, %{"data" => d}} = Starweave.FineTune.ping(server: :bench, data: bin); 1_048_576 = byte_size(d) end
l = Bench.latencies(pings, ours_ping)
Bench.emit("ours", "ping_p50_us", Bench.pct(l, 0.5))
Bench.emit("ours", "ping_p99_us", Bench.pct(l, 0.99))
Bench.emit("ours", "mib_per_s", Bench.throughput(mibs, ours_mib))

# raw {packet,4} echo: the same request bytes out and back, no decoding or dispatch
raw = Port.open({:spawn_executable, node}, [:binary, {:packet, 4}, :exit_status, :nouse_stdio, args: [raw_echo]])
ping_frame = IO.iodata_to_binary(Starweave.FineTune.MsgPack.encode!(%{id: 1, method: "ping", params: %{}}))
mib_frame = IO.iodata_to_binary(Starweave.FineTune.MsgPack.encode!(%{id: 1, method: "ping", params: %{data: bin}}))

raw_rt = fn frame ->
  fn ->
    Port.command(raw, frame)
    receive do
      {^raw, {:data, _}} -> :ok
    after
      10_000 -> raise "raw echo: no reply"
    end
  end
end

l = Bench.latencies(pings, raw_rt.(ping_frame))
Bench.emit("raw", "ping_p50_us", Bench.pct(l, 0.5))
Bench.emit("raw", "ping_p99_us", Bench.pct(l, 0.99))
Bench.emit("raw", "mib_per_s", Bench.throughput(mibs, raw_rt.(mib_frame)))
Port.close(raw)

# JSON lines over stdio with base64 payloads
json = Port.open({:spawn_executable, node}, [:binary, {:line, 4_194_304}, :exit_status, args: [json_bridge]])
b64 = Base.encode64(mib)

json_rt = fn payload ->
  fn ->
    data = if payload, do: ~s(,"params":{"data":"#{payload}"}), else: ~s(,"params":{})
    Port.command(json, [~s({"id":1,"method":"ping"), data, "}\n"])
    line = Bench.recv_line(json)
    # a bridge decodes the reply; take the payload out as cheaply as possible (favours the peer)
    case :binary.match(line, ~s("data":")) do
      {pos, len} ->
        rest = binary_part(line, pos + len, byte_size(line) - pos - len)
        [enc | _] = :binary.split(rest, "\"")
        Base.decode64!(enc)

      :nomatch ->
        :ok
    end
  end
end

l = Bench.latencies(pings, json_rt.(nil))
Bench.emit("json", "ping_p50_us", Bench.pct(l, 0.5))
Bench.emit("json", "ping_p99_us", Bench.pct(l, 0.99))
Bench.emit("json", "mib_per_s", Bench.throughput(mibs, json_rt.(b64)))
Port.close(json)
