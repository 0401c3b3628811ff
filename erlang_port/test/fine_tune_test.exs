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

  test "methods whose library part has not landed reply not_implemented", %{s: s} do
    # training runs have landed: a start without a run config is invalid params, not not_implemented
    assert {:error, %Error{code: :invalid_params}} = FineTune.train_start(%{}, s)

    assert {:error, %Error{code: :not_implemented, details: %{"issue" => 3}}} =
             FineTune.generate(%{prompt: "hi"}, s)

    assert {:error, %Error{code: :not_implemented, details: %{"issue" => 7}}} = FineTune.export(%{}, s)
    assert {:error, %Error{code: :unknown_method}} = FineTune.call("no.such", %{}, s)
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
