defmodule Starweave.FineTune.Telemetry do
  @moduledoc false
  # :telemetry events when the host application has :telemetry; no dependency on it. The check runs
  # once per server start (a missing module would otherwise be searched for on the code path each time).

  @key {__MODULE__, :available}

  @spec detect() :: boolean
  def detect do
    available = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :execute, 3)
    :persistent_term.put(@key, available)
    available
  end

  @doc "Whether events are emitted (callers skip building measurements otherwise)."
  @spec enabled?() :: boolean
  def enabled?, do: :persistent_term.get(@key, false)

  @spec execute([atom], map, map) :: :ok
  def execute(event, measurements, metadata) do
    if :persistent_term.get(@key, false) do
      # credo:disable-for-next-line
      apply(:telemetry, :execute, [[:starweave_finetune | event], measurements, metadata])
    end

    :ok
  end
end
