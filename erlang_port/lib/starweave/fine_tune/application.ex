defmodule Starweave.FineTune.Application do
  @moduledoc false
  # The application's own supervision tree: a DynamicSupervisor (`Starweave.FineTune.Sidecars`) under
  # which `Starweave.FineTune.Distributed` starts the sidecar of each node it trains on. It starts no
  # sidecar by itself: a host application puts `{Starweave.FineTune, opts}` in its own tree.
  use Application

  @impl true
  def start(_type, _args) do
    children = [{DynamicSupervisor, name: Starweave.FineTune.Sidecars, strategy: :one_for_one}]
    Supervisor.start_link(children, strategy: :one_for_one, name: Starweave.FineTune.Supervisor)
  end
end
