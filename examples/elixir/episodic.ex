defmodule Starweave.Memory.Episodic do
  @moduledoc """
  The episodic store: recent experiences as episodes in an ETS table owned by
  `Starweave.Memory.TableOwner`. Readers go to ETS directly; writes and evictions go through this
  process so that the size budget is enforced in one place.
  """
  use GenServer

  @table :episodes

  @doc "Starts the store with a size budget (`:budget`, in episodes, default 50_000)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc """
  Records an episode. Returns `{:ok, id}`; when the store passes its budget it asks the consolidator to
  run early instead of refusing the write.
  """
  @spec record(map()) :: {:ok, pos_integer()}
  def record(episode) when is_map(episode) do
    GenServer.call(__MODULE__, {:record, episode})
  end

  @doc """
  Returns the episodes that mention `entity`, newest first, reading ETS directly (no call to the
  store process, so lookups never queue behind writes).
  """
  @spec about(term()) :: [map()]
  def about(entity) do
    @table
    |> :ets.match_object({:_, :_, :_})
    |> Enum.filter(fn {_id, _at, ep} -> entity in Map.get(ep, :entities, []) end)
    |> Enum.sort_by(fn {_id, at, _ep} -> at end, {:desc, DateTime})
    |> Enum.map(fn {_id, _at, ep} -> ep end)
  end

  @impl true
  def init(opts) do
    {:ok, %{budget: Keyword.get(opts, :budget, 50_000), next_id: 1}}
  end

  @impl true
  def handle_call({:record, episode}, _from, %{next_id: id} = state) do
    true = :ets.insert(@table, {id, DateTime.utc_now(), episode})

    if :ets.info(@table, :size) > state.budget do
      Starweave.Memory.Consolidator.run_now()
    end

    {:reply, {:ok, id}, %{state | next_id: id + 1}}
  end
end
