defmodule Starweave.FineTuneTest do
  # against the real sidecar (dist/src/port/main.js), one per test
  use ExUnit.Case, async: false

  alias Starweave.FineTune
  alias Starweave.FineTune.{Error, Server}

  @moduletag timeout: 60_000

  setup context do
    ws = Path.join(System.tmp_dir!(), "sw-ex-#{System.unique_integer([:positive])}")
    File.mkdir_p!(ws)
    on_exit(fn -> File.rm_rf!(ws) end)
    name = :"ft_#{context.line}"
    opts = [name: name, workspace: ws, timeout: 20_000] ++ Map.get(context, :opts, [])
    pid = start_supervised!({FineTune, opts})
    {:ok, ws: ws, s: [server: name], pid: pid, name: name}
  end

  defp generated(per),
    do: %{"name" => "gen", "sources" => [%{"kind" => "generated", "seed" => 3, "perCategory" => per}]}

  defp wait_until(fun, ms \\ 5_000), do: wait_until(fun, System.monotonic_time(:millisecond) + ms, :loop)

  defp wait_until(fun, deadline, :loop) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) >= deadline -> :gave_up
      true -> Process.sleep(20) && wait_until(fun, deadline, :loop)
    end
  end

  test "ping and version", %{s: s} do
    assert {:ok, %{"pong" => true, "data" => nil}} = FineTune.ping(s)
    assert {:ok, %{"data" => %{"n" => 1_099_511_627_776}}} = FineTune.ping([data: %{n: 2 ** 40}] ++ s)
    big = :binary.copy(<<7>>, 1_048_576)
    assert {:ok, %{"data" => ^big}} = FineTune.ping([data: %FineTune.MsgPack.Bin{data: big}] ++ s)

    assert {:ok, %{"protocol" => 1, "name" => "starweave-finetune", "methods" => methods}} =
             FineTune.version(s)

    assert methods["train.start"] == %{"kind" => "job"}
    # the port's pipes, sized by the sidecar at start (64 KiB by default: 1 MiB frames cross them in
    # one write each way)
    assert {:ok, %{"transport" => %{"pipeBytes" => %{"in" => 1_048_576, "out" => 1_048_576}}}} =
             FineTune.version(s)
  end

  test "replies are matched to their callers whatever the width of the request id", %{s: s, name: name} do
    # a direct call's reply is matched by the id read from the frame's first bytes and only its value is
    # decoded: ids of every MessagePack width (fixint to uint64), results and errors
    {_port, _table, ids, _max, _server, _timeout} = :persistent_term.get({FineTune, :direct, name})

    for start <- [0x7E, 0xFE, 0xFFFE, 0xFFFF_FFFE, 0xFFFF_FFFF_FFFF_FF00] do
      :atomics.put(ids, 1, start)

      for i <- 1..3 do
        assert {:ok, %{"pong" => true, "data" => ^i}} = FineTune.ping([data: i] ++ s)
        assert {:ok, %{"pong" => true, "data" => nil}} = FineTune.ping(s)

        assert {:error, %Error{code: :invalid_params}} = FineTune.call("ping", %{"extra" => i}, s)
      end
    end
  end

  test "dataset validation: an error reply naming the field, then a report", %{s: s} do
    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.config.sources"}}} =
             FineTune.dataset_validate(%{"sources" => []}, s)

    assert {:error, %Error{code: :path_outside_workspace}} =
             FineTune.dataset_validate(
               %{"sources" => [%{"kind" => "interactions", "path" => "../x.jsonl"}]},
               s
             )

    assert {:ok, %{"ok" => true, "report" => %{"kept" => kept}}} = FineTune.dataset_validate(generated(10), s)
    assert kept > 30
  end

  test "a dataset build as a job with subscribed events, then list and show", %{s: s} do
    assert {:ok, job} = FineTune.start_dataset_build(generated(50), [store: "store"] ++ s)

    assert_receive {:starweave_finetune, ^job,
                    %{event: "done", data: %{"versionId" => id, "created" => true}}},
                   20_000

    assert {:ok, [%{"versionId" => ^id}]} = FineTune.dataset_list([store: "store"] ++ s)
    assert {:ok, %{"manifest" => %{"versionId" => ^id}}} = FineTune.dataset_show("gen", [store: "store"] ++ s)
    assert {:ok, %{"unchanged" => n}} = FineTune.dataset_diff(id, "gen", [store: "store"] ++ s)
    assert n > 0
  end

  test "collect: acknowledged records, and a field-named error for an invalid one", %{s: s, ws: ws} do
    i = %{
      messages: [
        %{role: "user", content: "What restarts the EpisodicMemory?"},
        %{role: "assistant", content: "Its supervisor."}
      ],
      category: "memory_context"
    }

    assert {:ok, %{"acks" => [%{"line" => 1}, %{"line" => 2}]}} = FineTune.collect([i, i], [log: "live"] ++ s)
    assert File.exists?(Path.join([ws, "live", "seg-000001.log"]))
    assert {:error, %Error{code: :invalid_params}} = FineTune.collect([%{messages: []}], s)
  end

  test "every method of the protocol has landed: a start without its params is invalid params", %{s: s} do
    assert {:error, %Error{code: :invalid_params}} = FineTune.train_start(%{}, s)

    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.model"}}} =
             FineTune.generate(%{prompt: "hi"}, s)

    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.format"}}} =
             FineTune.export(%{out: "x"}, s)

    assert {:error, %Error{code: :unknown_method}} = FineTune.call("no.such", %{}, s)
  end

  test "a run config that fails its schema: invalid_params naming the fields", %{s: s, ws: ws} do
    File.write!(Path.join(ws, "bad.json"), ~s({"name": "x", "model": {"dir": "m"}, "training": {"lr": -1}}))

    assert {:error, %Error{code: :invalid_params, details: %{"file" => "bad.json", "issues" => issues}}} =
             FineTune.train_start(%{config: "bad.json"}, s)

    assert "training.lr" in Enum.map(issues, & &1["path"])
  end

  # a tiny generated model in the workspace (the library's generator, from the built dist/)
  defp tiny_model(ws) do
    tiny = Path.expand("../../dist/src/model/tiny.js", __DIR__)

    code =
      "const {generateTinyModel} = await import(#{inspect(tiny)}); await generateTinyModel(#{inspect(Path.join(ws, "tiny"))}, 'tiny', 2);"

    {_, 0} =
      System.cmd(System.find_executable("node"), ["--input-type=module", "-e", code], stderr_to_stdout: true)

    "tiny"
  end

  defp collect_tokens(job, acc) do
    receive do
      {:starweave_finetune, ^job, %{event: "token", data: d}} ->
        collect_tokens(job, [d | acc])

      {:starweave_finetune, ^job, %{event: "start"}} ->
        collect_tokens(job, acc)

      {:starweave_finetune, ^job, %{event: "done", data: result}} ->
        {Enum.reverse(acc), result}

      {:starweave_finetune, ^job, %{event: other, data: d}} ->
        flunk("generation ended with #{other}: #{inspect(d)}")
    after
      30_000 -> flunk("no generation events")
    end
  end

  test "generate on a tiny model: streamed token events, the result, and generate_text", %{s: s, ws: ws} do
    model = tiny_model(ws)
    messages = [%{role: "user", content: "What restarts a crashed GenServer?"}]
    # more tokens than the event window (32): credits come back as the events are consumed
    params = %{model: model, messages: messages, maxNewTokens: 48, stopTokenIds: []}
    assert {:ok, job} = FineTune.generate(params, s)
    {tokens, result} = collect_tokens(job, [])

    assert length(tokens) == 48
    assert Enum.map(tokens, & &1["step"]) == Enum.to_list(0..47)
    assert %{"tokens" => ids, "finishReason" => "length", "newTokens" => 48, "text" => text} = result
    assert Enum.map(tokens, & &1["token"]) == ids
    assert Enum.map_join(tokens, & &1["text"]) == text

    # greedy decoding is deterministic: the awaited form gives the same reply, and so does the stream
    assert {:ok, %{"tokens" => ^ids, "text" => ^text}} = FineTune.generate_text(params, s)
    assert FineTune.generate_stream(params, s) |> Enum.join() == text

    # a consumer that stops early cancels the generation in the sidecar
    long = %{params | maxNewTokens: 400}
    assert [_, _, _] = FineTune.generate_stream(Map.put(long, :job, "early"), s) |> Enum.take(3)

    assert wait_until(fn -> match?({:ok, %{"status" => "cancelled"}}, FineTune.job_status("early", s)) end) ==
             true

    assert_raise Error, ~r/params.messages/, fn ->
      FineTune.generate_stream(%{model: model}, s) |> Enum.to_list()
    end

    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.messages"}}} =
             FineTune.generate_text(%{model: model}, s)

    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.topP"}}} =
             FineTune.generate_text(%{model: model, prompt: "x", topP: 2}, s)
  end

  test "a tiny training run with streamed events, then its adapter evaluated, exported and registered", %{
    s: s,
    ws: ws
  } do
    records = fn n, off ->
      for i <- 1..n,
          do: %{
            messages: [
              %{role: "user", content: "Which supervisor restarts worker #{i + off}?"},
              %{role: "assistant", content: "The WorkerSupervisor restarts worker #{i + off}."}
            ]
          }
    end

    config = %{
      name: "ex",
      model: %{dir: "models/tiny", generate: %{preset: "tiny", seed: 1}},
      dataset: %{train: records.(12, 0), heldout: records.(4, 100)},
      lora: %{r: 4, lora_alpha: 8, target_modules: "all-linear"},
      training: %{max_steps: 6, micro_batch: 2, max_seq_len: 96, lr: 0.005, seed: 3},
      eval: %{every_steps: 3},
      checkpoint: %{every_steps: 3, keep_last: 2},
      output: %{runs_dir: "runs", name: "r1"}
    }

    File.write!(Path.join(ws, "run.json"), json(config))
    assert {:ok, job} = FineTune.train_start(%{config: "run.json"}, s)

    events = collect_events(job, [])
    names = events |> Enum.map(& &1.event) |> Enum.uniq()
    for e <- ~w(start step eval checkpoint done), do: assert(e in names, "no #{e} event in #{inspect(names)}")

    assert %{"status" => "completed", "steps" => 6, "adapterDir" => "runs/r1/adapter"} =
             List.last(events).data

    assert {:ok, %{"tuned" => tuned, "base" => base, "delta" => %{"loss" => dl}}} =
             FineTune.eval_run(
               %{
                 model: "models/tiny",
                 adapter: "runs/r1/adapter",
                 data: %{records: records.(4, 100)},
                 metrics: %{generate_examples: 1, max_new_tokens: 4}
               },
               s
             )

    assert tuned["loss"] < base["loss"] and dl < 0

    assert {:ok, %{"export" => "peft", "source" => %{"run" => _}}} =
             FineTune.export(%{format: "peft", run: "runs/r1", out: "exports/r1"}, s)

    assert {:ok, %{"version" => %{"id" => _}}} = FineTune.registry_register(%{source: "runs/r1"}, s)
  end

  test "a killed sidecar mid-training: the caller is told, the supervisor restarts it, the run resumes from its checkpoint",
       %{s: s, ws: ws, name: name} do
    recs = shard_records(12)

    config = %{
      name: "long",
      model: %{dir: "models/tiny", generate: %{preset: "tiny", seed: 1}},
      dataset: %{train: recs, heldout: Enum.take(recs, 2)},
      lora: %{r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"]},
      training: %{max_steps: 100_000, micro_batch: 2, max_seq_len: 64, lr: 0.005, seed: 3},
      eval: %{every_steps: 1000},
      checkpoint: %{every_steps: 2, keep_last: 2},
      output: %{runs_dir: "runs", name: "long"}
    }

    File.write!(Path.join(ws, "long.json"), json(config))
    os_pid = FineTune.os_pid(s)
    assert {:ok, job} = FineTune.train_start(%{config: "long.json"}, s)
    assert_receive {:starweave_finetune, ^job, %{event: "checkpoint"}}, 60_000
    System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert_receive {:starweave_finetune, ^job, %{event: "sidecar_exited"}}, 10_000

    assert wait_until(fn ->
             pid = Process.whereis(name)
             pid && Process.alive?(pid) && match?({:ok, _}, FineTune.ping(s))
           end) == true

    assert {:ok, job2} = FineTune.train_resume("runs/long", s)

    assert_receive {:starweave_finetune, ^job2,
                    %{event: "start", data: %{"resumedFromStep" => step, "runDir" => "runs/long"}}},
                   60_000

    assert step >= 2
    assert_receive {:starweave_finetune, ^job2, %{event: "step", data: %{"step" => next}}}, 60_000
    assert next > step
    assert {:ok, %{"status" => "cancelling"}} = FineTune.train_cancel(job2, s)
    # the run stops at a step boundary with a checkpoint: the job's result says so
    assert_receive {:starweave_finetune, ^job2,
                    %{event: "done", data: %{"status" => "cancelled", "checkpoint" => ck}}},
                   60_000

    assert is_binary(ck)
  end

  # a run config file (Elixir 1.14 has no JSON encoder; no Hex packages here)
  test "data parallel: Distributed.train over two sidecars (the ring all-reduce between them); single-process loss, one adapter",
       %{s: s, ws: ws, name: name} do
    start_supervised!(
      Supervisor.child_spec({FineTune, [name: :dp_peer, workspace: ws, timeout: 60_000]}, id: :dp_peer)
    )

    for rank <- ["0", "single"],
        do: Starweave.FineTune.Test.Fixtures.write_dp_config(ws, "dp#{rank}.json", "runs#{rank}")

    # the tiny model is generated before two workers share it: a first run of it alone
    assert {:ok, job} = FineTune.train_start(%{config: "dpsingle.json"}, s)
    assert %{"status" => "completed", "lastLoss" => single} = List.last(collect_events(job, [])).data

    assert {:ok, ends} =
             FineTune.Distributed.train([name, :dp_peer], %{config: "dp0.json", runs_dir: "runsdp"})

    assert [
             %{"status" => "completed", "steps" => 3, "lastLoss" => loss},
             %{"status" => "completed", "steps" => 3}
           ] = ends

    for step <- 1..3, do: assert_received({:starweave_distributed, ^step, %{loss: l}} when is_float(l))
    # the same run in one sidecar: the last step's loss within floating-point tolerance
    assert abs(loss - single) < 1.0e-5 * abs(single)

    adapter = fn rank ->
      File.read!(Path.join([ws, "runsdp", "worker-#{rank}", "dp", "adapter", "adapter_model.safetensors"]))
    end

    assert adapter.(0) == adapter.(1)
  end

  defp shard_records(n), do: Starweave.FineTune.Test.Fixtures.shard_records(n)

  defp json(v), do: Starweave.FineTune.Test.JSON.encode(v)

  defp collect_events(job, acc) do
    receive do
      {:starweave_finetune, ^job, %{event: e} = ev} when e in ["done", "failed", "cancelled"] ->
        if e != "done", do: flunk("the job ended #{e}: #{inspect(ev.data)}")
        Enum.reverse([ev | acc])

      {:starweave_finetune, ^job, ev} ->
        collect_events(job, [ev | acc])
    after
      120_000 -> flunk("no end of job #{job}")
    end
  end

  @tag opts: [registry: "deploy/store"]
  test "export a model as GGUF; register, promote, serve, monitor, roll back", %{s: s, ws: ws} do
    model = tiny_model(ws)

    assert {:ok, %{"export" => "gguf", "dir" => "exports/gguf", "files" => [%{"path" => "model.gguf"} | _]}} =
             FineTune.export(%{format: "gguf", model: model, out: "exports/gguf", dtype: "f32"}, s)

    assert <<"GGUF", 3::little-32, _::binary>> = File.read!(Path.join([ws, "exports", "gguf", "model.gguf"]))

    assert {:error, %Error{code: :export_error}} =
             FineTune.export(%{format: "gguf", model: model, out: "exports/gguf"}, s)

    assert {:ok, %{"version" => %{"id" => v1}}} =
             FineTune.registry_register(%{source: model, tags: ["base"]}, s)

    assert {:ok, %{"versions" => [%{"id" => ^v1, "tags" => ["base"]}]}} = FineTune.registry_list(s)
    # the store the :registry option names
    assert File.dir?(Path.join([ws, "deploy", "store"]))
    assert {:ok, %{"promoted" => true}} = FineTune.registry_promote("base", "prod", [reason: "first"] ++ s)

    request = %{
      channel: "prod",
      messages: [%{role: "user", content: "What restarts a GenServer?"}],
      maxNewTokens: 3
    }

    assert {:ok, %{"version" => ^v1, "text" => text}} = FineTune.serve_generate(request, s)
    assert is_binary(text)
    assert {:ok, snapshot} = FineTune.monitor_snapshot("prod", s)
    assert inspect(snapshot) =~ v1
    assert {:ok, %{"text" => prom}} = FineTune.monitor_exposition(s)
    assert prom =~ "prod"

    # nothing to roll back to: the registry's refusal, as an error code to match
    assert {:error, %Error{code: :registry_error}} = FineTune.registry_rollback("prod", s)
    assert {:ok, [_ | _]} = FineTune.registry_history("prod", s)

    assert {:error, %Error{code: :invalid_params, details: %{"path" => "params.channel"}}} =
             FineTune.registry_promote(v1, "no spaces allowed", s)

    assert {:error, %Error{code: :path_outside_workspace}} = FineTune.registry_register(%{source: "../x"}, s)
  end

  test "eval_run on a tiny model: the report, with progress events", %{s: s, ws: ws} do
    model = tiny_model(ws)

    records =
      for i <- 1..5,
          do: %{
            category: if(rem(i, 2) == 0, do: "otp", else: "memory_context"),
            messages: [
              %{role: "user", content: "Which process restarts worker #{i}?"},
              %{role: "assistant", content: "Its supervisor restarts worker #{i}."}
            ]
          }

    params = %{
      model: model,
      data: %{records: records},
      metrics: %{max_examples: 4, generate_examples: 2, max_new_tokens: 4},
      output: "evals/one"
    }

    assert {:ok, report} = FineTune.eval_run(params, [subscribe: true, job: "ev1"] ++ s)
    assert %{"format" => "starweave-eval/1", "tuned" => tuned, "base" => nil, "file" => file} = report
    assert %{"examples" => 4, "generated" => 2, "tokenAccuracy" => acc} = tuned
    assert acc >= 0 and acc <= 1
    assert Map.keys(tuned["categories"]) |> Enum.sort() == ["memory_context", "otp"]
    assert File.exists?(Path.join(ws, file))
    assert_received {:starweave_finetune, "ev1", %{event: "start", data: %{"examples" => 4}}}
    assert_received {:starweave_finetune, "ev1", %{event: "progress", data: %{"total" => 4}}}

    assert {:error, %Error{code: :path_outside_workspace}} =
             FineTune.eval_run(%{params | model: "../elsewhere"}, s)
  end

  test "a malformed frame gets an error reply and the sidecar keeps serving", %{name: name, s: s} do
    assert {:error, %Error{code: :malformed_frame}} = GenServer.call(name, {:raw, <<0x93, 0x01>>})

    assert {:error, %Error{code: :malformed_frame}} =
             GenServer.call(name, {:raw, <<0xC1>> |> then(&(&1 <> <<1>>))})

    assert {:ok, %{"pong" => true}} = FineTune.ping(s)
  end

  test "calls from many processes at once (straight to the port) each get their own reply", %{s: s} do
    results =
      1..64
      |> Enum.map(fn i -> Task.async(fn -> {i, FineTune.ping([data: %{"n" => i}] ++ s)} end) end)
      |> Enum.map(&Task.await(&1, 10_000))

    for {i, r} <- results, do: assert({:ok, %{"pong" => true, "data" => %{"n" => ^i}}} = r)
  end

  test "a call that times out before its reply returns :timeout; the server keeps serving", %{s: s} do
    # timeout 0: the reply cannot be there yet; the request is cancelled and a late reply is dropped
    assert {:error, :timeout} = FineTune.call("ping", %{}, [timeout: 0] ++ s)
    assert {:ok, %{"pong" => true}} = FineTune.ping(s)
    refute_receive _, 50
  end

  test "a call that times out returns :timeout and its job is cancelled in the sidecar", %{s: s} do
    assert {:error, :timeout} = FineTune.dataset_validate(generated(20_000), [timeout: 300, job: "slow"] ++ s)

    assert wait_until(fn ->
             match?({:ok, %{"status" => "cancelled"}}, FineTune.job_status("slow", s))
           end) == true
  end

  test "a killed sidecar: waiting callers get :sidecar_exited, the supervisor restarts it", %{
    s: s,
    name: name
  } do
    os_pid = FineTune.os_pid(s)
    task = Task.async(fn -> FineTune.dataset_validate(generated(20_000), s) end)
    Process.sleep(200)
    System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert Task.await(task, 10_000) == {:error, :sidecar_exited}

    assert wait_until(fn ->
             pid = Process.whereis(name)
             pid && Process.alive?(pid) && match?({:ok, _}, FineTune.ping(s))
           end) == true

    refute FineTune.os_pid(s) == os_pid
  end

  test "calls straight to the port: a killed sidecar fails them at once, a killed server within 100 ms",
       %{s: s, name: name} do
    # a stopped sidecar answers nothing: the calls (direct, no hop through the server) wait
    stopped_ping = fn ->
      os_pid = FineTune.os_pid(s)
      System.cmd("kill", ["-STOP", Integer.to_string(os_pid)])
      tasks = for _ <- 1..3, do: Task.async(fn -> FineTune.ping(s) end)
      Process.sleep(300)
      assert Enum.all?(tasks, &(Task.yield(&1, 0) == nil))
      {os_pid, tasks}
    end

    # the sidecar killed: the server fails every waiting call as soon as it sees the exit
    {os_pid, tasks} = stopped_ping.()
    t0 = System.monotonic_time(:millisecond)
    System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert Enum.map(tasks, &Task.await(&1, 5_000)) == List.duplicate({:error, :sidecar_exited}, 3)
    assert System.monotonic_time(:millisecond) - t0 < 1_000
    assert wait_until(fn -> match?({:ok, _}, FineTune.ping(s)) end) == true

    # the server killed outright (no terminate, nobody fails the calls): the callers notice it themselves
    {os_pid, tasks} = stopped_ping.()
    t0 = System.monotonic_time(:millisecond)
    Process.exit(Process.whereis(name), :kill)
    assert Enum.map(tasks, &Task.await(&1, 5_000)) == List.duplicate({:error, :sidecar_exited}, 3)
    assert System.monotonic_time(:millisecond) - t0 < 1_000
    # the stopped sidecar, its input closed, exits once it runs again
    System.cmd("kill", ["-CONT", Integer.to_string(os_pid)])
    assert wait_until(fn -> not Server.os_alive?(os_pid) end) == true
    assert wait_until(fn -> match?({:ok, _}, FineTune.ping(s)) end) == true
  end

  test "stopping the owner stops the sidecar (no orphan)", %{s: s, name: name} do
    os_pid = FineTune.os_pid(s)
    assert Server.os_alive?(os_pid)
    :ok = stop_supervised(name)
    refute Process.whereis(name)
    refute Server.os_alive?(os_pid)
  end

  test "options are checked before anything starts" do
    assert {:error, {:invalid_options, msg}} = FineTune.start_link(bogus: 1)
    assert msg =~ "unknown options"
    assert {:error, {:invalid_options, _}} = FineTune.start_link(timeout: -1, name: nil)
    assert {:error, {:invalid_options, _}} = FineTune.start_link(workspace: "/no/such/dir", name: nil)
    assert_raise ArgumentError, fn -> FineTune.child_spec(max_frame_bytes: :big) end
  end

  test "the BEAM killed with SIGKILL: the sidecar notices EOF and exits", %{ws: ws} do
    ebin = Path.expand("../_build/test/lib/starweave_finetune/ebin", __DIR__)

    code = """
    {:ok, _} = Starweave.FineTune.start_link(workspace: #{inspect(ws)}, name: :orphan_check)
    IO.puts("PIDS \#{System.pid()} \#{Starweave.FineTune.os_pid(server: :orphan_check)}")
    Process.sleep(:infinity)
    """

    elixir = System.find_executable("elixir")

    port =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: ["-pa", ebin, "-e", code]
      ])

    {beam, sidecar} = read_pids(port, "")
    assert Server.os_alive?(sidecar)
    System.cmd("kill", ["-KILL", Integer.to_string(beam)])
    assert wait_until(fn -> not Server.os_alive?(sidecar) end, 10_000) == true
  end

  defp read_pids(port, acc) do
    receive do
      {^port, {:data, d}} ->
        acc = acc <> d

        case Regex.run(~r/PIDS (\d+) (\d+)/, acc) do
          [_, b, s] -> {String.to_integer(b), String.to_integer(s)}
          nil -> read_pids(port, acc)
        end

      {^port, {:exit_status, st}} ->
        flunk("the child BEAM exited (#{st}): #{acc}")
    after
      30_000 -> flunk("no pids from the child BEAM: #{acc}")
    end
  end
end
