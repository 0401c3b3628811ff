defmodule Starweave.FineTune.Server do
  @moduledoc false
  # The GenServer that owns the sidecar's port: it numbers requests, matches replies, times calls out
  # (and cancels their work in the sidecar), forwards job events to subscribers and returns event
  # credits as they keep up, hands the sidecar's log frames to Logger, and on shutdown closes the port,
  # waits, then escalates to SIGTERM and SIGKILL. When the sidecar dies every waiting caller gets
  # {:error, :sidecar_exited} at once and the server stops, so that its supervisor restarts it.
  use GenServer
  require Logger

  alias Starweave.FineTune.{Error, MsgPack, Telemetry}

  @terminal ~w(done failed cancelled)
  # a subscriber whose mailbox holds more than this many messages gets no new credits until it catches up
  @mailbox_limit 256
  # how often a direct call waiting for its reply checks that the server is alive (see direct_call/4)
  @alive_check_ms 100

  defstruct [:port, :os_pid, :opts, :table, :ids, pending: %{}, jobs: %{}, raw_waiters: []]

  def start_link(opts) when is_map(opts) do
    gen_opts = if opts.name, do: [name: opts.name], else: []
    GenServer.start_link(__MODULE__, opts, gen_opts)
  end

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    Telemetry.detect()

    args =
      [
        opts.script,
        "--workspace",
        opts.workspace,
        "--max-frame-bytes",
        Integer.to_string(opts.max_frame_bytes)
      ] ++
        ["--log-level", Atom.to_string(opts.log_level)] ++
        if(opts.registry, do: ["--registry", opts.registry], else: []) ++ opts.args

    env = Enum.map(opts.env, fn {k, v} -> {to_charlist(k), v && to_charlist(v)} end)

    port =
      Port.open({:spawn_executable, opts.node}, [
        :binary,
        {:packet, 4},
        :exit_status,
        :nouse_stdio,
        args: args,
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    # calls go straight from the caller to the port (direct_call/4): the caller takes an id, leaves its
    # address in this table and writes its frame; this process matches the reply and sends it on
    table = :ets.new(__MODULE__, [:set, :public, write_concurrency: true])
    ids = :atomics.new(1, signed: false)

    if opts.name do
      :persistent_term.put({Starweave.FineTune, :timeout, opts.name}, opts.timeout)

      :persistent_term.put(
        {Starweave.FineTune, :direct, opts.name},
        {port, table, ids, opts.max_frame_bytes, self(), opts.timeout}
      )
    end

    {:ok, %__MODULE__{port: port, os_pid: os_pid, opts: opts, table: table, ids: ids}}
  end

  # ------------------------------------------------------------------------------- calls, in the caller

  @doc false
  # A call without a hop through the server on the way out: the caller numbers its request, registers
  # itself, writes the frame to the port and waits; the server forwards the reply. Same results as the
  # {:call, ...} path: {:ok, r}, {:error, %Error{}}, {:error, :timeout} (the sidecar is told to cancel),
  # {:error, :sidecar_exited}.
  def direct_call({port, table, ids, max_frame_bytes, server, _default_timeout}, method, params, timeout) do
    id = :atomics.add_get(ids, 1, 1)
    frame = request_frame(id, method, params)
    size = IO.iodata_length(frame)

    if size > max_frame_bytes do
      {:error,
       %Error{
         code: :frame_too_large,
         message: "the request of #{size} bytes is over the maximum frame of #{max_frame_bytes}",
         details: %{"bytes" => size, "max" => max_frame_bytes}
       }}
    else
      started =
        if Telemetry.enabled?() do
          Telemetry.execute([:call, :start], %{system_time: System.system_time()}, %{method: method, id: id})
          System.monotonic_time()
        end

      # No monitor on the server: a monitor and its removal are two signals that the server must wake
      # up to handle, about 1 µs of a 18 µs ping on one CPU (docs/PERFORMANCE.md). A waiting caller
      # learns of the sidecar's death from the server, which fails every entry of the table at once (the
      # sidecar's exit, the server's terminate); a server killed outright (no terminate) is noticed by
      # looking every @alive_check_ms while waiting.
      ref = make_ref()

      try do
        :ets.insert(table, {id, self(), ref, method, started})
        Port.command(port, frame)
      rescue
        ArgumentError -> {:error, :sidecar_exited}
      else
        _ -> await_direct(port, table, id, ref, server, timeout, %{method: method, started: started})
      end
    end
  end

  defp await_direct(port, table, id, ref, server, timeout, entry) do
    wait = min(timeout, @alive_check_ms)

    receive do
      {^ref, {:frame, bin}} -> direct_reply(bin, entry)
      {^ref, reply} -> reply
    after
      wait ->
        cond do
          not Process.alive?(server) -> server_gone(ref, entry)
          timeout > wait -> await_direct(port, table, id, ref, server, timeout - wait, entry)
          true -> direct_timeout(port, table, id, ref, server, entry)
        end
    end
  end

  defp direct_timeout(port, table, id, ref, server, entry) do
    taken =
      try do
        :ets.take(table, id)
      rescue
        ArgumentError -> :gone
      end

    case taken do
      [_] ->
        # the caller has its answer; the sidecar drops the work (and its reply)
        try do
          Port.command(port, MsgPack.encode!(%{method: "cancel", params: %{id: id}}))
        rescue
          ArgumentError -> :ok
        end

        call_exception(entry, :timeout)
        {:error, :timeout}

      _ ->
        # the server has taken the entry: its reply (or its failure) is on the way
        await_taken(ref, server, entry)
    end
  end

  defp await_taken(ref, server, entry) do
    receive do
      {^ref, {:frame, bin}} -> direct_reply(bin, entry)
      {^ref, reply} -> reply
    after
      @alive_check_ms ->
        if Process.alive?(server), do: await_taken(ref, server, entry), else: server_gone(ref, entry)
    end
  end

  # the server is dead: a reply it sent before dying is already in the mailbox
  defp server_gone(ref, entry) do
    receive do
      {^ref, {:frame, bin}} -> direct_reply(bin, entry)
      {^ref, reply} -> reply
    after
      0 ->
        call_exception(entry, :sidecar_exited)
        {:error, :sidecar_exited}
    end
  end

  # a direct call's reply frame, decoded in the caller (the server only read its id). A result comes as
  # {"id": n, "result": value} (the sidecar writes the id first): only the value is decoded.
  defp direct_reply(<<0x82, 0xA2, "id", rest::binary>> = bin, entry) do
    case skip_id(rest) do
      <<0xA6, "result", value::binary>> ->
        case MsgPack.decode(value) do
          {:ok, v} ->
            reply = {:ok, v}
            call_stop(entry, reply)
            reply

          _ ->
            decode_reply(bin, entry)
        end

      _ ->
        decode_reply(bin, entry)
    end
  end

  defp direct_reply(bin, entry), do: decode_reply(bin, entry)

  defp skip_id(<<i, rest::binary>>) when i < 0x80, do: rest
  defp skip_id(<<0xCC, _, rest::binary>>), do: rest
  defp skip_id(<<0xCD, _::16, rest::binary>>), do: rest
  defp skip_id(<<0xCE, _::32, rest::binary>>), do: rest
  defp skip_id(<<0xCF, _::64, rest::binary>>), do: rest
  defp skip_id(_), do: <<>>

  defp decode_reply(bin, entry) do
    reply =
      case MsgPack.decode(bin) do
        {:ok, m} when is_map_key(m, "result") or is_map_key(m, "error") ->
          to_reply(m)

        other ->
          {:error,
           %Error{code: :internal, message: "undecodable reply from the sidecar: #{inspect(other, limit: 5)}"}}
      end

    call_stop(entry, reply)
    reply
  end

  # ------------------------------------------------------------------------------------------- requests

  @impl true
  def handle_call({:call, method, params, timeout}, from, s) do
    request(s, method, params, %{kind: :call, from: from}, timeout)
  end

  def handle_call({:job, method, params, timeout, mode, subscriber}, from, s) do
    job = Map.get(params, "job") || "ex-#{System.unique_integer([:positive, :monotonic])}"
    params = Map.merge(params, %{"job" => job, "credits" => s.opts.event_window})
    entry = Map.get(s.jobs, job, new_job())
    entry = if subscriber, do: add_subscriber(entry, subscriber), else: entry

    {entry, req_timeout} =
      case mode do
        :await -> {%{entry | waiter: {from, Process.send_after(self(), {:job_timeout, job}, timeout)}}, nil}
        :start -> {entry, timeout}
      end

    s = %{s | jobs: Map.put(s.jobs, job, entry)}
    Telemetry.execute([:job, :start], %{system_time: System.system_time()}, %{job: job, method: method})
    request(s, method, params, %{kind: {:job_start, job, mode}, from: from}, req_timeout)
  end

  def handle_call({:subscribe, job, pid}, _from, s) do
    entry = s.jobs |> Map.get(job, new_job()) |> add_subscriber(pid)
    {:reply, :ok, %{s | jobs: Map.put(s.jobs, job, entry)}}
  end

  def handle_call({:unsubscribe, job, pid}, _from, s) do
    case s.jobs do
      %{^job => entry} ->
        {ref, subs} = Map.pop(entry.subscribers, pid)
        if ref, do: Process.demonitor(ref, [:flush])
        {:reply, :ok, %{s | jobs: Map.put(s.jobs, job, %{entry | subscribers: subs})}}

      _ ->
        {:reply, :ok, s}
    end
  end

  def handle_call(:os_pid, _from, s), do: {:reply, s.os_pid, s}
  def handle_call(:workspace, _from, s), do: {:reply, s.opts.workspace, s}

  # test hook: raw bytes as one frame; the reply is the next error that names no request
  def handle_call({:raw, iodata}, from, s) do
    Port.command(s.port, iodata)
    {:noreply, %{s | raw_waiters: s.raw_waiters ++ [from]}}
  end

  defp request(s, method, params, entry, timeout) do
    id = :atomics.add_get(s.ids, 1, 1)
    frame = request_frame(id, method, params)
    size = IO.iodata_length(frame)

    if size > s.opts.max_frame_bytes do
      err = %Error{
        code: :frame_too_large,
        message: "the request of #{size} bytes is over the maximum frame of #{s.opts.max_frame_bytes}",
        details: %{"bytes" => size, "max" => s.opts.max_frame_bytes}
      }

      {:reply, {:error, err}, drop_job_on_error(s, entry)}
    else
      Port.command(s.port, frame)
      timer = timeout && Process.send_after(self(), {:call_timeout, id}, timeout)

      # the clock and the telemetry event only where a host listens (a hot-path cost otherwise)
      started =
        if Telemetry.enabled?() do
          Telemetry.execute([:call, :start], %{system_time: System.system_time()}, %{method: method, id: id})
          System.monotonic_time()
        end

      entry = Map.merge(entry, %{timer: timer, method: method, started: started})
      {:noreply, %{s | pending: Map.put(s.pending, id, entry)}}
    end
  end

  # %{id: id, method: method, params: params} as MessagePack, "id" first (the sidecar reads the id of a
  # frame it refuses from its first bytes), as iodata: the params' big binaries are referenced, not copied
  # {id, method, params} as MessagePack, the same bytes as MsgPack.encode!/1 writes (ids are the atomics'
  # unsigned counter; a method is a short str), built without its generic dispatch: a ping's own cost
  defp request_frame(id, method, params) when is_binary(method) and byte_size(method) < 32 do
    [
      <<0x83, 0xA2, "id", id_bytes(id)::binary, 0xA6, "method", 0xA0 + byte_size(method)>>,
      method,
      <<0xA6, "params">> | params_bytes(params)
    ]
  end

  defp request_frame(id, method, params) do
    [
      <<0x83, 0xA2, "id", id_bytes(id)::binary, 0xA6, "method">>,
      MsgPack.encode!(method),
      <<0xA6, "params">> | params_bytes(params)
    ]
  end

  defp id_bytes(id) when id < 0x80, do: <<id>>
  defp id_bytes(id) when id < 0x100, do: <<0xCC, id>>
  defp id_bytes(id) when id < 0x10000, do: <<0xCD, id::16>>
  defp id_bytes(id) when id < 0x100000000, do: <<0xCE, id::32>>
  defp id_bytes(id), do: <<0xCF, id::64>>

  defp params_bytes(params) when map_size(params) == 0, do: <<0x80>>
  defp params_bytes(params), do: MsgPack.encode!(params)

  defp drop_job_on_error(s, %{kind: {:job_start, job, _}}) do
    case s.jobs do
      %{^job => %{waiter: {_, t}}} when t != nil -> cancel_timer(t)
      _ -> :ok
    end

    %{s | jobs: Map.delete(s.jobs, job)}
  end

  defp drop_job_on_error(s, _), do: s

  defp notify(s, method, params) do
    Port.command(s.port, MsgPack.encode!(%{method: method, params: params}))
  end

  # ------------------------------------------------------------------------------------------ from the port

  @impl true
  # A reply to a direct call goes on undecoded: its id is read from the frame's first bytes (the sidecar
  # writes replies as {id, result | error}, "id" first) and the caller decodes it, so this process, which
  # every reply passes through, does the least work per reply.
  def handle_info({port, {:data, <<0x82, 0xA2, "id", rest::binary>> = bin}}, %{port: port} = s) do
    with id when is_integer(id) <- peek_id(rest),
         [{_, pid, ref, _method, _started}] <- :ets.take(s.table, id) do
      send(pid, {ref, {:frame, bin}})
      {:noreply, s}
    else
      _ -> decode_message(bin, s)
    end
  end

  def handle_info({port, {:data, bin}}, %{port: port} = s), do: decode_message(bin, s)

  def handle_info({port, {:exit_status, status}}, %{port: port} = s) do
    Logger.warning("starweave-finetune sidecar exited with status #{status}")
    s = fail_all(%{s | port: nil}, :sidecar_exited)
    {:stop, {:sidecar_exited, status}, s}
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = s) do
    s = fail_all(%{s | port: nil}, :sidecar_exited)
    {:stop, {:sidecar_exited, reason}, s}
  end

  def handle_info({:EXIT, _pid, reason}, s), do: {:stop, reason, s}

  def handle_info({:call_timeout, id}, s) do
    case Map.pop(s.pending, id) do
      {nil, _} ->
        {:noreply, s}

      {entry, pending} ->
        # the caller has its answer; the sidecar drops the work (and its reply)
        notify(s, "cancel", %{id: id})
        GenServer.reply(entry.from, {:error, :timeout})
        call_exception(entry, :timeout)
        {:noreply, drop_job_on_error(%{s | pending: pending}, entry)}
    end
  end

  def handle_info({:job_timeout, job}, s) do
    case s.jobs do
      %{^job => %{waiter: {from, _}} = entry} ->
        notify(s, "jobs.cancel", %{job: job})
        GenServer.reply(from, {:error, :timeout})
        {:noreply, %{s | jobs: Map.put(s.jobs, job, %{entry | waiter: nil})}}

      _ ->
        {:noreply, s}
    end
  end

  def handle_info({:retry_ack, job}, s), do: {:noreply, maybe_ack(s, job, true)}

  def handle_info({:DOWN, ref, :process, pid, _}, s) do
    jobs =
      Map.new(s.jobs, fn {job, entry} ->
        case entry.subscribers do
          %{^pid => ^ref} -> {job, %{entry | subscribers: Map.delete(entry.subscribers, pid)}}
          _ -> {job, entry}
        end
      end)

    {:noreply, %{s | jobs: jobs}}
  end

  def handle_info(_other, s), do: {:noreply, s}

  defp decode_message(bin, s) do
    case MsgPack.decode(bin) do
      {:ok, msg} ->
        {:noreply, handle_message(msg, s)}

      {:error, reason} ->
        Logger.error("starweave-finetune sidecar sent an undecodable frame: #{inspect(reason)}")
        {:noreply, s}
    end
  end

  defp peek_id(<<i, _::binary>>) when i < 0x80, do: i
  defp peek_id(<<0xCC, i, _::binary>>), do: i
  defp peek_id(<<0xCD, i::16, _::binary>>), do: i
  defp peek_id(<<0xCE, i::32, _::binary>>), do: i
  defp peek_id(<<0xCF, i::64, _::binary>>), do: i
  defp peek_id(_), do: nil

  defp handle_message(%{"id" => id} = m, s) when is_map_key(m, "result") or is_map_key(m, "error") do
    case Map.pop(s.pending, id) do
      {nil, _} ->
        case :ets.take(s.table, id) do
          [{_, pid, ref, method, started}] ->
            reply = to_reply(m)
            send(pid, {ref, reply})
            call_stop(%{method: method, started: started}, reply)
            s

          [] ->
            orphan_reply(m, s)
        end

      {entry, pending} ->
        settle(entry, m, %{s | pending: pending})
    end
  end

  defp handle_message(%{"job" => job, "event" => event} = m, s) do
    ev = %{event: event, data: m["data"], seq: m["seq"]}
    entry = Map.get(s.jobs, job, new_job())
    for {pid, _} <- entry.subscribers, do: send(pid, {:starweave_finetune, job, ev})

    if event in @terminal do
      finish_job(s, job, entry, event, m["data"])
    else
      s = %{s | jobs: Map.put(s.jobs, job, %{entry | unacked: entry.unacked + 1})}
      maybe_ack(s, job)
    end
  end

  defp handle_message(%{"log" => level, "message" => text} = m, s) do
    level =
      Map.get(%{"debug" => :debug, "info" => :info, "warning" => :warning, "error" => :error}, level, :info)

    Logger.log(level, "[starweave-finetune] #{text}", sidecar: true, sidecar_data: m["data"])
    s
  end

  defp handle_message(other, s) do
    Logger.warning("starweave-finetune sidecar sent an unknown message: #{inspect(other, limit: 10)}")
    s
  end

  defp settle(%{kind: :call} = entry, m, s) do
    reply = to_reply(m)
    GenServer.reply(entry.from, reply)
    if entry.timer, do: cancel_timer(entry.timer)
    call_stop(entry, reply)
    s
  end

  defp settle(%{kind: {:job_start, job, mode}} = entry, m, s) do
    if entry.timer, do: cancel_timer(entry.timer)
    reply = to_reply(m)
    call_stop(entry, reply)

    case {reply, mode} do
      {{:error, _}, :await} ->
        {from, _} = s.jobs[job].waiter
        GenServer.reply(from, reply)
        drop_job_on_error(s, entry)

      {{:error, _}, :start} ->
        GenServer.reply(entry.from, reply)
        drop_job_on_error(s, entry)

      {{:ok, _}, :start} ->
        GenServer.reply(entry.from, {:ok, job})
        s

      {{:ok, _}, :await} ->
        s
    end
  end

  defp to_reply(%{"error" => e}) when e != nil, do: {:error, Error.from_wire(e)}
  defp to_reply(%{"result" => r}), do: {:ok, r}

  defp orphan_reply(%{"error" => e} = m, s) when e != nil do
    case s.raw_waiters do
      [from | rest] ->
        GenServer.reply(from, {:error, Error.from_wire(e)})
        %{s | raw_waiters: rest}

      [] ->
        Logger.warning("starweave-finetune sidecar: #{e["code"]}: #{e["message"]} (id #{inspect(m["id"])})")
        s
    end
  end

  defp orphan_reply(_m, s), do: s

  defp finish_job(s, job, entry, event, data) do
    for {_, ref} <- entry.subscribers, do: Process.demonitor(ref, [:flush])

    case entry.waiter do
      {from, timer} ->
        cancel_timer(timer)

        GenServer.reply(
          from,
          case event do
            "done" -> {:ok, data}
            "failed" -> {:error, Error.from_wire(data)}
            "cancelled" -> {:error, :cancelled}
          end
        )

      nil ->
        :ok
    end

    Telemetry.execute([:job, :stop], %{system_time: System.system_time()}, %{job: job, status: event})
    %{s | jobs: Map.delete(s.jobs, job)}
  end

  # credits go back in batches of half the window, and only while every subscriber keeps up
  defp maybe_ack(s, job, retrying \\ false) do
    case s.jobs do
      %{^job => %{unacked: n} = entry} when n > 0 ->
        cond do
          not retrying and (entry.retry or n < max(div(s.opts.event_window, 2), 1)) ->
            s

          Enum.any?(entry.subscribers, fn {pid, _} -> congested?(pid) end) ->
            Process.send_after(self(), {:retry_ack, job}, 20)
            %{s | jobs: Map.put(s.jobs, job, %{entry | retry: true})}

          true ->
            if s.port, do: notify(s, "events.ack", %{job: job, credits: n})
            %{s | jobs: Map.put(s.jobs, job, %{entry | unacked: 0, retry: false})}
        end

      %{^job => entry} ->
        %{s | jobs: Map.put(s.jobs, job, %{entry | retry: false})}

      _ ->
        s
    end
  end

  defp congested?(pid) do
    case Process.info(pid, :message_queue_len) do
      {:message_queue_len, n} -> n > @mailbox_limit
      nil -> false
    end
  end

  # asynchronous: the reply path never waits on the timer service
  defp cancel_timer(ref), do: Process.cancel_timer(ref, async: true, info: false)

  defp new_job, do: %{subscribers: %{}, waiter: nil, unacked: 0, retry: false}

  defp add_subscriber(entry, pid) do
    if Map.has_key?(entry.subscribers, pid),
      do: entry,
      else: %{entry | subscribers: Map.put(entry.subscribers, pid, Process.monitor(pid))}
  end

  defp fail_all(s, reason) do
    for {_id, entry} <- s.pending do
      if entry.timer, do: cancel_timer(entry.timer)
      GenServer.reply(entry.from, {:error, reason})
      call_exception(entry, reason)
    end

    for {job, entry} <- s.jobs do
      case entry.waiter do
        {from, timer} ->
          cancel_timer(timer)
          GenServer.reply(from, {:error, reason})

        nil ->
          :ok
      end

      for {pid, _} <- entry.subscribers,
          do: send(pid, {:starweave_finetune, job, %{event: Atom.to_string(reason), data: nil, seq: nil}})
    end

    for from <- s.raw_waiters, do: GenServer.reply(from, {:error, reason})

    for {id, _, _, _, _} <- :ets.tab2list(s.table) do
      case :ets.take(s.table, id) do
        [{_, pid, ref, method, started}] ->
          send(pid, {ref, {:error, reason}})
          call_exception(%{method: method, started: started}, reason)

        [] ->
          :ok
      end
    end

    %{s | pending: %{}, jobs: %{}, raw_waiters: []}
  end

  defp call_stop(%{started: nil}, _reply), do: :ok

  defp call_stop(entry, reply) do
    Telemetry.execute(
      [:call, :stop],
      %{duration: System.monotonic_time() - entry.started},
      %{method: entry.method, result: elem(reply, 0)}
    )
  end

  defp call_exception(%{started: nil}, _reason), do: :ok

  defp call_exception(entry, reason) do
    Telemetry.execute(
      [:call, :exception],
      %{duration: System.monotonic_time() - entry.started},
      %{method: entry.method, kind: :error, reason: reason}
    )
  end

  # ------------------------------------------------------------------------------------------ shutdown

  @impl true
  def terminate(_reason, %{port: nil} = s), do: forget(s)

  def terminate(_reason, s) do
    s = fail_all(s, :sidecar_exited)
    forget(s)

    try do
      Port.close(s.port)
    rescue
      ArgumentError -> :ok
    end

    # EOF on its fd 3 stops the sidecar (it checkpoints jobs first); escalate if it does not go
    unless wait_exit(s.os_pid, s.opts.shutdown_timeout) do
      Logger.warning("starweave-finetune sidecar #{s.os_pid} still running; sending SIGTERM")
      System.cmd("kill", ["-TERM", Integer.to_string(s.os_pid)], stderr_to_stdout: true)

      unless wait_exit(s.os_pid, 1_000) do
        Logger.error("starweave-finetune sidecar #{s.os_pid} ignored SIGTERM; sending SIGKILL")
        System.cmd("kill", ["-KILL", Integer.to_string(s.os_pid)], stderr_to_stdout: true)
        wait_exit(s.os_pid, 1_000)
      end
    end

    :ok
  end

  # callers stop writing to this port (a restarted server puts its own entry)
  defp forget(%{opts: %{name: name}, port: port}) when name != nil do
    case :persistent_term.get({Starweave.FineTune, :direct, name}, nil) do
      {^port, _, _, _, _, _} -> :persistent_term.erase({Starweave.FineTune, :direct, name})
      _ -> :ok
    end

    :ok
  end

  defp forget(_s), do: :ok

  @doc false
  def os_alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        not String.contains?(stat, ") Z ")

      {:error, :enoent} ->
        false

      {:error, _} ->
        match?({_, 0}, System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true))
    end
  end

  defp wait_exit(os_pid, ms) do
    deadline = System.monotonic_time(:millisecond) + ms
    wait_until(os_pid, deadline)
  end

  defp wait_until(os_pid, deadline) do
    cond do
      not os_alive?(os_pid) ->
        true

      System.monotonic_time(:millisecond) >= deadline ->
        false

      true ->
        Process.sleep(10)
        wait_until(os_pid, deadline)
    end
  end
end
