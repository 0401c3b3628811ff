defmodule Starweave.Patterns.Detector do
  @moduledoc """
  A GenServer that scores closed windows of one signal against the registered patterns and emits a
  match event when a pattern's confidence stays above its threshold for enough consecutive windows.

  One detector runs per signal. It keeps only the streak counters of the patterns it scores, so its
  memory does not grow with the length of the stream.
  """
  use GenServer

  alias Starweave.Patterns.Registry

  @type signal :: atom()
  @type window :: %{features: map(), closed_at: DateTime.t(), events: non_neg_integer()}

  @doc """
  Starts a detector for `signal`. Options: `:min_events` (windows with fewer events are reported as
  insufficient data, default 5) and `:streak` (consecutive windows above threshold needed, default 2).
  """
  @spec start_link(signal(), keyword()) :: GenServer.on_start()
  def start_link(signal, opts \\ []) do
    GenServer.start_link(__MODULE__, {signal, opts}, name: {:via, Registry, {Starweave.Registry, {:detector, signal}}})
  end

  @doc """
  Scores a closed window. Returns `:insufficient_data` when the window holds too few events, otherwise
  the list of `{pattern_id, confidence}` pairs that reached their threshold in this window.
  """
  @spec score(signal(), window()) :: :insufficient_data | [{String.t(), float()}]
  def score(signal, window) do
    GenServer.call({:via, Registry, {Starweave.Registry, {:detector, signal}}}, {:score, window})
  end

  @impl true
  def init({signal, opts}) do
    state = %{
      signal: signal,
      min_events: Keyword.get(opts, :min_events, 5),
      streak: Keyword.get(opts, :streak, 2),
      streaks: %{}
    }

    {:ok, state, {:continue, :load_patterns}}
  end

  @impl true
  def handle_continue(:load_patterns, state) do
    {:noreply, Map.put(state, :patterns, Registry.patterns_for(state.signal))}
  end

  @impl true
  def handle_call({:score, %{events: n}}, _from, %{min_events: min} = state) when n < min do
    {:reply, :insufficient_data, state}
  end

  def handle_call({:score, window}, _from, state) do
    {hits, streaks} =
      Enum.reduce(state.patterns, {[], state.streaks}, fn pattern, {hits, streaks} ->
        confidence = pattern.detector.confidence(window.features)

        if confidence >= pattern.threshold do
          streak = Map.get(streaks, pattern.id, 0) + 1
          hits = if streak >= state.streak, do: [{pattern.id, confidence} | hits], else: hits
          {hits, Map.put(streaks, pattern.id, streak)}
        else
          {hits, Map.delete(streaks, pattern.id)}
        end
      end)

    Enum.each(hits, fn {id, c} ->
      :telemetry.execute([:starweave, :patterns, :match], %{confidence: c}, %{pattern: id, signal: state.signal})
    end)

    {:reply, hits, %{state | streaks: streaks}}
  end
end
