defmodule Starweave.Memory.Supervisor do
  @moduledoc """
  Supervises the memory subsystem: the ETS table owner, the episodic store and the consolidator, in that
  order, with the `:rest_for_one` strategy.

  The table owner must start first and outlive its readers: when it dies its tables die with it, and the
  processes started after it hold references to tables that no longer exist. `:rest_for_one` restarts
  exactly those processes.
  """
  use Supervisor

  @doc """
  Starts the memory supervisor. `opts` are passed to the children: `:budget` (the episodic store's size
  budget in episodes) and `:consolidate_every` (milliseconds between consolidation runs).
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) do
    Supervisor.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @impl true
  def init(opts) do
    children = [
      {Starweave.Memory.TableOwner, []},
      {Starweave.Memory.Episodic, Keyword.take(opts, [:budget])},
      {Starweave.Memory.Consolidator, Keyword.take(opts, [:consolidate_every])}
    ]

    Supervisor.init(children, strategy: :rest_for_one, max_restarts: 5, max_seconds: 30)
  end
end
