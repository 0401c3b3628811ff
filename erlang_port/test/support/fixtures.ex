defmodule Starweave.FineTune.Test.Fixtures do
  @moduledoc false
  # Shared by the training tests: small chat records and run config files.

  def shard_records(n),
    do:
      for(
        i <- 1..n,
        do: %{
          messages: [
            %{role: "user", content: "Which node owns shard #{i}?"},
            %{role: "assistant", content: "Node #{rem(i, 3)} owns shard #{i}."}
          ]
        }
      )

  # A short data-parallel-ready run (3 steps of 2 micro-batches, dropout on) on the tiny model, written to
  # WORKSPACE/FILE; its runs go to runs_dir.

  # The train losses by step of a run folder's metrics.jsonl (no JSON decoder in Elixir 1.14).
  def train_losses(run_dir) do
    for line <- run_dir |> Path.join("metrics.jsonl") |> File.read!() |> String.split("\n", trim: true),
        [_, step, loss] <- [Regex.run(~r/"type":"train","step":(\d+),.*"loss":(-?[0-9.eE+-]+)/, line)],
        into: %{},
        do: {String.to_integer(step), String.to_float(loss)}
  end

  def write_dp_config(workspace, file, runs_dir, over \\ %{}) do
    config = %{
      name: "dp",
      model: %{dir: "models/tiny", generate: %{preset: "tiny", seed: 1}},
      dataset: %{train: shard_records(12), heldout: Enum.take(shard_records(12), 2)},
      lora: %{r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: "all-linear"},
      training: %{max_steps: 3, micro_batch: 1, grad_accum: 2, max_seq_len: 64, lr: 0.005, seed: 3},
      eval: %{every_steps: 0, at_start: false},
      checkpoint: %{every_steps: 0},
      output: %{runs_dir: runs_dir, name: "dp"}
    }

    # `over`: sections merged into the config's (%{training: %{max_steps: 12}, checkpoint: %{every_steps: 2}})
    config = Map.merge(config, over, fn _k, a, b -> Map.merge(a, b) end)
    File.write!(Path.join(workspace, file), Starweave.FineTune.Test.JSON.encode(config))
  end
end
