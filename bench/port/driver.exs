# bench:port's Elixir side: the same round trips through three ports, from one BEAM, in one run.
# Prints one JSON line per measurement: {"target","case","value"}.
#
# The targets take turns in rounds (ours, raw, raw on 1 MiB pipes, JSON lines, ours, ...), so that a load
# that comes and goes on a shared machine falls on all alike; each target's samples are pooled over the rounds. The
# round trips are compiled functions (a closure defined at the top of a script runs in the evaluator,
# which would add its own microseconds to every target).
[node, script, raw_echo, json_bridge, workspace, pings_s, mibs_s, ping_rounds_s] = System.argv()

defmodule Bench do
  alias Starweave.FineTune.MsgPack

  def main(node, script, raw_echo, json_bridge, workspace, pings, mibs, ping_rounds) do
    mib = :binary.copy(<<0xAB>>, 1_048_576)

    {:ok, _} =
      Starweave.FineTune.start_link(
        node: node,
        script: script,
        workspace: workspace,
        name: :bench,
        log_level: :warning
      )

    raw = Port.open({:spawn_executable, node}, [:binary, {:packet, 4}, :exit_status, :nouse_stdio, args: [raw_echo]])
    # the same echo on pipes sized as the sidecar sizes its own (1 MiB)
    raw1m =
      Port.open({:spawn_executable, node}, [:binary, {:packet, 4}, :exit_status, :nouse_stdio, args: [raw_echo, "--pipe-bytes", "1048576"]])

    json = Port.open({:spawn_executable, node}, [:binary, {:line, 4_194_304}, :exit_status, args: [json_bridge]])
    bin = %MsgPack.Bin{data: mib}
    ping_frame = IO.iodata_to_binary(MsgPack.encode!(%{id: 1, method: "ping", params: %{}}))
    mib_frame = IO.iodata_to_binary(MsgPack.encode!(%{id: 1, method: "ping", params: %{data: bin}}))
    b64 = Base.encode64(mib)

    targets = [
      ours: {fn -> ours(nil) end, fn -> ours(bin) end},
      raw: {fn -> raw(raw, ping_frame) end, fn -> raw(raw, mib_frame) end},
      raw1m: {fn -> raw(raw1m, ping_frame) end, fn -> raw(raw1m, mib_frame) end},
      json: {fn -> json(json, nil) end, fn -> json(json, b64) end}
    ]

    # warm-up of the pings (the payloads' own warm-up comes after the pings: small round trips right after
    # megabyte frames are slower for a while, ~25 vs ~19 µs for ours on one CPU, see docs/PERFORMANCE.md)
    for {_, {ping, _big}} <- targets do
      for _ <- 1..2000, do: ping.()
    end

    # ping_rounds: with every process on one CPU, a few long rounds (a target that has just woken up is
    # slower for its first round trips); free on this VM's two vCPUs, whose cross-CPU wake-ups are slow and
    # whose placement changes within a fraction of a second, many short rounds (50 pings), so that every
    # target sees the placements alike. A multiple of 4, so each target leads as often as the others. The
    # payloads keep longer rounds (each 1 MiB round trip takes milliseconds).
    ping_rounds = max(min(ping_rounds, div(pings, 50)), 1)
    per_round = max(div(pings, ping_rounds), 1)
    rounds = max(min(8, div(pings, 250)), 1)
    mib_round = max(div(mibs, rounds), 1)

    # the pings first, then the payloads (the garbage a 1 MiB round trip leaves would fall on the pings);
    # each round starts with another target (a target's leftovers fall on whichever runs next), and before
    # each block of payloads the driver collects its garbage and lets the machine settle (the JSON bridge's
    # megabyte lines leave a lot of it, on both sides)
    lats =
      Enum.reduce(1..ping_rounds, %{}, fn r, acc ->
        Enum.reduce(rotate(targets, r), acc, fn {name, {ping, _}}, acc ->
          lat = for _ <- 1..per_round, do: time_us(ping)
          Map.update(acc, name, lat, &(lat ++ &1))
        end)
      end)

    for {_, {_ping, big}} <- targets do
      for _ <- 1..3, do: big.()
    end

    mibs_us =
      Enum.reduce(1..rounds, %{}, fn r, acc ->
        Enum.reduce(rotate(targets, r), acc, fn {name, {_, big}}, acc ->
          settle()
          us = time_us(fn -> for _ <- 1..mib_round, do: big.() end)
          Map.update(acc, name, {us, mib_round}, fn {u, n} -> {u + us, n + mib_round} end)
        end)
      end)

    samples = Map.new(targets, fn {name, _} -> {name, Tuple.insert_at(mibs_us[name], 0, lats[name])} end)

    for {name, _} <- targets do
      {lat, us, n} = samples[name]
      sorted = Enum.sort(lat)
      emit(name, "ping_p50_us", pct(sorted, 0.5))
      emit(name, "ping_p99_us", pct(sorted, 0.99))
      emit(name, "mib_per_s", n / (us / 1_000_000))
    end

    Port.close(raw)
    Port.close(raw1m)
    Port.close(json)
  end

  # ours: the public API (a caller process, the GenServer that owns the port, the sidecar)
  def ours(nil), do: {:ok, _} = Starweave.FineTune.ping(server: :bench)

  def ours(bin) do
    {:ok, %{"data" => d}} = Starweave.FineTune.ping(server: :bench, data: bin)
    1_048_576 = byte_size(d)
  end

  # raw {packet,4} echo: the same request bytes out and back, no decoding or dispatch
  def raw(port, frame) do
    Port.command(port, frame)

    receive do
      {^port, {:data, _}} -> :ok
    after
      10_000 -> raise "raw echo: no reply"
    end
  end

  # JSON lines over stdio with base64 payloads
  def json(port, payload) do
    data = if payload, do: ~s(,"params":{"data":"#{payload}"}), else: ~s(,"params":{})
    Port.command(port, [~s({"id":1,"method":"ping"), data, "}\n"])
    line = recv_line(port)
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

  def recv_line(port, acc \\ []) do
    receive do
      {^port, {:data, {:eol, l}}} -> IO.iodata_to_binary([acc, l])
      {^port, {:data, {:noeol, l}}} -> recv_line(port, [acc, l])
    after
      10_000 -> raise "json bridge: no reply"
    end
  end

  def rotate(list, r) do
    k = rem(r, length(list))
    Enum.drop(list, k) ++ Enum.take(list, k)
  end

  def settle do
    :erlang.garbage_collect()
    Process.sleep(20)
  end

  def time_us(fun) do
    t0 = System.monotonic_time(:nanosecond)
    fun.()
    (System.monotonic_time(:nanosecond) - t0) / 1000
  end

  def pct(sorted, p), do: Enum.at(sorted, min(length(sorted) - 1, floor(p * length(sorted))))

  def emit(target, kase, value), do: IO.puts(~s({"target":"#{target}","case":"#{kase}","value":#{value}}))
end

Bench.main(node, script, raw_echo, json_bridge, workspace, String.to_integer(pings_s), String.to_integer(mibs_s), String.to_integer(ping_rounds_s))
