defmodule Starweave.FineTune.MixProject do
  use Mix.Project

  # Only OTP and Elixir's standard library: no Hex packages (none can be fetched where this runs).
  def project do
    [
      app: :starweave_finetune,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [],
      test_paths: ["test"],
      docs: [main: "Starweave.FineTune"]
    ]
  end

  def application do
    [mod: {Starweave.FineTune.Application, []}, extra_applications: [:logger]]
  end
end
