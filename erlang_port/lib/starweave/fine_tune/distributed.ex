defmodule Starweave.FineTune.Distributed do
  @moduledoc """
  Synchronous data-parallel LoRA training over several sidecars (docs/DISTRIBUTED.md): the same run on
  every worker, each computing its share of every step's micro-batches; this module is the all-reduce
  between them.

  Workers are `Starweave.FineTune` servers: a registered name on this node, or `{name, node}` for one on
  another node of the cluster (Erlang distribution carries the calls, the events and the gradient
  binaries). Each worker's `train.start` job gets `"parallel" => %{"rank" => i, "workers" => n}`; at every
  step each worker sends its gradients (an f32 little-endian binary) and step statistics, this process
  sums them (a star: the coordinator is the root of a one-level tree) and answers each worker with
  `Starweave.FineTune.train_reduce/5`. Every worker then takes the same optimizer step.

  Not yet: a ring all-reduce for large adapters, parameter-hash checks, dropping a dead worker and
  rebalancing, rejoining (see docs/DISTRIBUTED.md).
  """

  alias Starweave.FineTune

  @type worker :: atom | {atom, node}

  @doc """
  Runs a training job (`params` as for `Starweave.FineTune.train_start/2`: `%{"config" => path}` inside
  every worker's workspace, and optionally `"runs_dir"`, which gets `/rank-N` appended per worker) on the
  given workers and blocks until every worker ends. The caller (or `notify:` pid) receives
  `{:starweave_distributed, step, %{loss: l, tokens: t}}` after each reduced step.

  Returns `{:ok, [result_of_rank_0, ...]}` (each worker's `train.start` result) or
  `{:error, {:worker_failed, rank, data}}` / `{:error, {:worker_down, rank, reason}}` (its server or node
  went away) / `{:error, {:start_failed, rank, reason}}`; then the others are cancelled (each stops at a
  step boundary with a checkpoint).
  """
  @spec train([worker, ...], map, keyword) :: {:ok, [map]} | {:error, term}
  def train(workers, params, opts \\ []) when is_list(workers) and workers != [] do
    n = length(workers)
    notify = opts[:notify] || self()
    timeout = opts[:step_timeout] || 600_000

    started =
      workers
      |> Enum.with_index()
      |> Enum.reduce_while({:ok, []}, fn {w, rank}, {:ok, acc} ->
        p =
          params
          |> Map.new(fn {k, v} -> {to_string(k), v} end)
          |> Map.put("parallel", %{"rank" => rank, "workers" => n})
          |> Map.put_new("credits", 1000)
          |> then(fn p -> if p["runs_dir"], do: Map.put(p, "runs_dir", Path.join(p["runs_dir"], "rank-#{rank}")), else: p end)

        case FineTune.train_start(p, server: w) do
          {:ok, job} -> {:cont, {:ok, acc ++ [{w, job}]}}
          {:error, reason} -> {:halt, {:error, {:start_failed, rank, reason}, acc}}
        end
      end)

    case started do
      {:ok, jobs} ->
        # a worker's server (or its node) going away ends the run with a clear reason, not a timeout
        monitors = jobs |> Enum.with_index() |> Map.new(fn {{w, _}, rank} -> {Process.monitor(w), rank} end)

        try do
          loop(jobs, 1, notify, timeout, monitors)
        after
          Enum.each(Map.keys(monitors), &Process.demonitor(&1, [:flush]))
        end

      {:error, reason, jobs} ->
        cancel(jobs)
        {:error, reason}
    end
  end

  defp loop(jobs, step, notify, timeout, monitors) do
    evs = Enum.map(jobs, fn {_w, job} -> next_event(job, timeout, monitors) end)

    cond do
      (down = Enum.find(evs, &match?({"down", _}, &1))) != nil ->
        {"down", {rank, reason}} = down
        jobs |> List.delete_at(rank) |> cancel()
        {:error, {:worker_down, rank, reason}}

      Enum.all?(evs, &match?({"done", _}, &1)) ->
        {:ok, Enum.map(evs, &elem(&1, 1))}

      (failed = Enum.find_index(evs, &(elem(&1, 0) != "gradients"))) != nil ->
        cancel(jobs)
        {:error, {:worker_failed, failed, evs |> Enum.at(failed) |> elem(1)}}

      true ->
        data = Enum.map(evs, &elem(&1, 1))

        case Enum.uniq(Enum.map(data, & &1["step"])) do
          [^step] -> :ok
          steps -> raise "data-parallel workers out of step: expected #{step}, got #{inspect(steps)}"
        end

        grads = data |> Enum.map(& &1["grads"]) |> sum_f32()
        stats = data |> Enum.map(& &1["stats"]) |> Enum.zip_with(&Enum.sum/1)

        replies = Enum.map(jobs, fn {w, job} -> FineTune.train_reduce(job, step, grads, stats, server: w) end)

        case Enum.find_index(replies, &(not match?({:ok, %{"ok" => true}}, &1))) do
          nil ->
            [loss_sum, tokens, _rows] = stats
            send(notify, {:starweave_distributed, step, %{loss: if(tokens > 0, do: loss_sum / tokens, else: nil), tokens: tokens}})
            loop(jobs, step + 1, notify, timeout, monitors)

          rank ->
            jobs |> List.delete_at(rank) |> cancel()
            {:error, {:worker_down, rank, Enum.at(replies, rank)}}
        end
    end
  end

  # The next "gradients" or terminal event of a job (other events pass by), or a worker's server gone.
  defp next_event(job, timeout, monitors) do
    receive do
      {:starweave_finetune, ^job, %{event: e, data: data}} when e in ["gradients", "done", "failed", "cancelled"] -> {e, data}
      {:starweave_finetune, ^job, _other} -> next_event(job, timeout, monitors)
      {:DOWN, ref, :process, _, reason} when is_map_key(monitors, ref) -> {"down", {monitors[ref], reason}}
    after
      timeout -> {"failed", %{"reason" => "no gradients from job #{job} within #{timeout} ms"}}
    end
  end

  defp cancel(jobs), do: Enum.each(jobs, fn {w, job} -> FineTune.train_cancel(job, server: w) end)

  @doc false
  # f32 little-endian binaries of equal length, summed element by element (in rank order, so every
  # worker gets the same sums).
  @spec sum_f32([binary, ...]) :: binary
  def sum_f32([one]), do: one
  def sum_f32([a, b | rest]), do: sum_f32([add(a, b, []) | rest])

  defp add(<<x::float-32-little, a::binary>>, <<y::float-32-little, b::binary>>, acc),
    do: add(a, b, [acc | <<x + y::float-32-little>>])

  defp add(<<>>, <<>>, acc), do: IO.iodata_to_binary(acc)
end
