defmodule Starweave.FineTune.MsgPackTest do
  use ExUnit.Case, async: true
  doctest Starweave.FineTune.MsgPack

  alias Starweave.FineTune.MsgPack
  alias Starweave.FineTune.MsgPack.{Bin, Ext}
  alias Starweave.FineTune.Test.JSON

  @vectors_file Path.expand("../../test/vectors/msgpack.json", __DIR__)
  @external_resource @vectors_file
  {:object, top} = JSON.decode!(File.read!(@vectors_file))
  @vectors top |> Map.new() |> Map.fetch!("vectors") |> Enum.map(fn {:object, kv} -> Map.new(kv) end)

  # the tagged JSON value -> the Elixir term (bins tagged, so that str and bin stay distinct)
  defp term({:object, [{"$int", s}]}), do: String.to_integer(s)
  defp term({:object, [{"$f64", "NaN"}]}), do: :nan
  defp term({:object, [{"$f64", "Infinity"}]}), do: :infinity
  defp term({:object, [{"$f64", "-Infinity"}]}), do: :neg_infinity
  defp term({:object, [{"$f64", x}]}), do: x * 1.0
  defp term({:object, [{"$bin", hex}]}), do: %Bin{data: Base.decode16!(hex, case: :lower)}

  defp term({:object, [{"$binrepeat", [byte, n]}]}),
    do: %Bin{data: :binary.copy(Base.decode16!(byte, case: :lower), n)}

  defp term({:object, [{"$repeat", [ch, n]}]}), do: String.duplicate(ch, n)
  defp term({:object, [{"$ext", [t, hex]}]}), do: %Ext{type: t, data: Base.decode16!(hex, case: :lower)}
  defp term({:object, kv}), do: Map.new(kv, fn {k, v} -> {k, term(v)} end)
  defp term(l) when is_list(l), do: Enum.map(l, &term/1)
  defp term(x), do: x

  defp bytes(hex) when is_binary(hex), do: Base.decode16!(hex, case: :lower)

  defp bytes(parts) when is_list(parts) do
    parts
    |> Enum.map(fn
      [byte, n] -> :binary.copy(Base.decode16!(byte, case: :lower), n)
      hex -> Base.decode16!(hex, case: :lower)
    end)
    |> IO.iodata_to_binary()
  end

  test "the vectors file is there and covers the format" do
    assert length(@vectors) > 50
  end

  for v <- @vectors do
    @v v
    if "elixir" in Map.get(v, "encoders", ["elixir"]) do
      test "encode: #{v["name"]}" do
        assert IO.iodata_to_binary(MsgPack.encode!(term(@v["value"]))) == bytes(@v["hex"])
      end
    end

    if "elixir" in Map.get(v, "decoders", ["elixir"]) do
      test "decode: #{v["name"]}" do
        want = term(@v["value"])
        {:ok, got} = MsgPack.decode(bytes(@v["hex"]), binaries: :tagged)

        if is_float(want), do: assert(got == want and is_float(got)), else: assert(got == want)
      end
    end
  end

  test "errors: truncated, trailing bytes, the never-used byte, unencodable terms" do
    assert MsgPack.decode(<<0x93, 1>>) == {:error, :truncated}
    assert MsgPack.decode(<<0xCD, 1>>) == {:error, :truncated}
    assert MsgPack.decode(<<1, 2>>) == {:error, {:trailing_bytes, 1}}
    assert MsgPack.decode(<<0xC1>>) == {:error, {:invalid_byte, 0xC1}}
    assert MsgPack.encode(2 ** 64) == {:error, {:unencodable, 2 ** 64}}
    assert MsgPack.encode({:a, 1}) == {:error, {:unencodable, {:a, 1}}}
  end

  test "atoms, structs and bins" do
    assert MsgPack.decode!(IO.iodata_to_binary(MsgPack.encode!(%{a: :b}))) == %{"a" => "b"}
    assert MsgPack.decode!(IO.iodata_to_binary(MsgPack.encode!(~D[2025-01-06]))) == "2025-01-06"
    assert MsgPack.decode!(IO.iodata_to_binary(MsgPack.encode!(%Bin{data: <<0, 255>>}))) == <<0, 255>>
  end

  test "every integer width round-trips" do
    for i <-
          [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1] ++
            [-1, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 63)] do
      assert MsgPack.decode!(IO.iodata_to_binary(MsgPack.encode!(i))) == i
    end
  end
end
