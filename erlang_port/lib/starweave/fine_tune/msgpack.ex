defmodule Starweave.FineTune.MsgPack do
  @moduledoc """
  MessagePack, the whole format, in plain Elixir: the codec of the port's frames.

  Encoding (Elixir -> MessagePack):

    * `nil`, `true`, `false` -> nil, true, false; other atoms -> str (their name);
      `:nan`, `:infinity`, `:neg_infinity` -> float64 NaN / +Inf / -Inf
    * integers -> the smallest of fixint, uint8/16/32, int8/16/32; beyond 32 bits int64 while it fits,
      then uint64 (msgpackr's choices, so both sides write the same bytes); beyond 64 bits: an error
    * floats -> float64
    * binaries -> str (UTF-8 text is what Elixir code passes around); `%Bin{}` -> bin
    * lists -> array; maps -> map (keys encoded the same way); `%Ext{}` -> fixext/ext
    * `DateTime`, `NaiveDateTime`, `Date`, `Time` -> their ISO 8601 str; other structs -> their fields as a map

  Decoding: str and bin -> binaries (`binaries: :tagged` gives `%Bin{}` for bin); float32/64 -> floats
  (NaN and infinities -> the atoms above); ints of every width -> integers; ext -> `%Ext{}` (timestamps
  included: passed through, not interpreted); map keys stay as decoded (strings are never made atoms).

      iex> Starweave.FineTune.MsgPack.encode!(%{"a" => [1, -1, 1.5, nil]}) |> IO.iodata_to_binary()
      <<0x81, 0xA1, ?a, 0x94, 0x01, 0xFF, 0xCB, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0xC0>>

      iex> Starweave.FineTune.MsgPack.decode(<<0xCF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF>>)
      {:ok, 18_446_744_073_709_551_615}
  """

  defmodule Bin do
    @moduledoc "A MessagePack bin value (plain binaries encode as str)."
    defstruct data: <<>>
    @type t :: %__MODULE__{data: binary}
  end

  defmodule Ext do
    @moduledoc "A MessagePack extension value: its type (-128..127) and data, passed through as they are."
    defstruct [:type, data: <<>>]
    @type t :: %__MODULE__{type: -128..127, data: binary}
  end

  @type value ::
          nil
          | boolean
          | atom
          | integer
          | float
          | binary
          | Bin.t()
          | Ext.t()
          | [value]
          | %{optional(value) => value}

  # ---------------------------------------------------------------------------------------------- encode

  @doc "Encodes a term as iodata (big binaries are referenced, not copied); `{:error, reason}` when it cannot."
  @spec encode(term) :: {:ok, iodata} | {:error, {:unencodable, term}}
  def encode(term) do
    {:ok, enc(term)}
  catch
    {:unencodable, _} = reason -> {:error, reason}
  end

  @doc "Like `encode/1` but raises `ArgumentError`."
  @spec encode!(term) :: iodata
  def encode!(term) do
    case encode(term) do
      {:ok, io} ->
        io

      {:error, {:unencodable, t}} ->
        raise ArgumentError, "cannot encode #{inspect(t, limit: 5)} as MessagePack"
    end
  end

  defp enc(nil), do: <<0xC0>>
  defp enc(false), do: <<0xC2>>
  defp enc(true), do: <<0xC3>>
  defp enc(:nan), do: <<0xCB, 0x7FF8000000000000::64>>
  defp enc(:infinity), do: <<0xCB, 0x7FF0000000000000::64>>
  defp enc(:neg_infinity), do: <<0xCB, 0xFFF0000000000000::64>>
  defp enc(a) when is_atom(a), do: enc_str(Atom.to_string(a))
  defp enc(i) when is_integer(i), do: enc_int(i)
  defp enc(f) when is_float(f), do: <<0xCB, f::float-64>>
  defp enc(b) when is_binary(b), do: enc_str(b)
  defp enc(%Bin{data: b}) when is_binary(b), do: enc_bin(b)
  defp enc(%Ext{type: t, data: d}) when is_integer(t) and t in -128..127 and is_binary(d), do: enc_ext(t, d)
  defp enc(l) when is_list(l), do: [array_header(length(l)) | Enum.map(l, &enc/1)]
  defp enc(%m{} = s) when m in [DateTime, NaiveDateTime, Date, Time], do: enc_str(m.to_iso8601(s))
  defp enc(%_{} = s), do: enc(Map.from_struct(s))

  defp enc(m) when is_map(m) do
    [map_header(map_size(m)) | Enum.map(m, fn {k, v} -> [enc(k), enc(v)] end)]
  end

  defp enc(other), do: throw({:unencodable, other})

  defp enc_int(i) when i >= 0 and i < 0x80, do: <<i>>
  defp enc_int(i) when i >= -32 and i < 0, do: <<i::signed-8>>
  defp enc_int(i) when i >= 0 and i < 0x100, do: <<0xCC, i>>
  defp enc_int(i) when i >= 0 and i < 0x10000, do: <<0xCD, i::16>>
  defp enc_int(i) when i >= 0 and i < 0x100000000, do: <<0xCE, i::32>>
  defp enc_int(i) when i >= -0x80 and i < 0, do: <<0xD0, i::signed-8>>
  defp enc_int(i) when i >= -0x8000 and i < 0, do: <<0xD1, i::signed-16>>
  defp enc_int(i) when i >= -0x80000000 and i < 0, do: <<0xD2, i::signed-32>>
  defp enc_int(i) when i >= -0x8000000000000000 and i < 0x8000000000000000, do: <<0xD3, i::signed-64>>
  defp enc_int(i) when i >= 0 and i < 0x10000000000000000, do: <<0xCF, i::64>>
  defp enc_int(i), do: throw({:unencodable, i})

  defp enc_str(s) do
    case byte_size(s) do
      n when n < 32 -> [<<0xA0 + n>>, s]
      n when n < 0x100 -> [<<0xD9, n>>, s]
      n when n < 0x10000 -> [<<0xDA, n::16>>, s]
      n when n < 0x100000000 -> [<<0xDB, n::32>>, s]
      _ -> throw({:unencodable, :string_too_long})
    end
  end

  defp enc_bin(b) do
    case byte_size(b) do
      n when n < 0x100 -> [<<0xC4, n>>, b]
      n when n < 0x10000 -> [<<0xC5, n::16>>, b]
      n when n < 0x100000000 -> [<<0xC6, n::32>>, b]
      _ -> throw({:unencodable, :binary_too_long})
    end
  end

  defp enc_ext(t, d) do
    case byte_size(d) do
      1 -> [<<0xD4, t::signed-8>>, d]
      2 -> [<<0xD5, t::signed-8>>, d]
      4 -> [<<0xD6, t::signed-8>>, d]
      8 -> [<<0xD7, t::signed-8>>, d]
      16 -> [<<0xD8, t::signed-8>>, d]
      n when n < 0x100 -> [<<0xC7, n, t::signed-8>>, d]
      n when n < 0x10000 -> [<<0xC8, n::16, t::signed-8>>, d]
      n -> [<<0xC9, n::32, t::signed-8>>, d]
    end
  end

  defp array_header(n) when n < 16, do: <<0x90 + n>>
  defp array_header(n) when n < 0x10000, do: <<0xDC, n::16>>
  defp array_header(n), do: <<0xDD, n::32>>

  defp map_header(n) when n < 16, do: <<0x80 + n>>
  defp map_header(n) when n < 0x10000, do: <<0xDE, n::16>>
  defp map_header(n), do: <<0xDF, n::32>>

  # ---------------------------------------------------------------------------------------------- decode

  @doc """
  Decodes exactly one value from `binary`.

  Options: `binaries: :plain` (default: bin -> binary) or `:tagged` (bin -> `%Bin{}`).
  Errors: `{:error, :truncated}`, `{:error, {:trailing_bytes, n}}`, `{:error, {:invalid_byte, byte}}`.
  """
  @spec decode(binary, keyword) :: {:ok, value} | {:error, term}
  def decode(binary, opts \\ []) when is_binary(binary) do
    tagged = Keyword.get(opts, :binaries, :plain) == :tagged

    case dec(binary, tagged) do
      {v, <<>>} -> {:ok, v}
      {_v, rest} -> {:error, {:trailing_bytes, byte_size(rest)}}
    end
  catch
    {:msgpack, reason} -> {:error, reason}
  end

  @doc "Like `decode/2` but raises `ArgumentError`."
  @spec decode!(binary, keyword) :: value
  def decode!(binary, opts \\ []) do
    case decode(binary, opts) do
      {:ok, v} -> v
      {:error, r} -> raise ArgumentError, "invalid MessagePack: #{inspect(r)}"
    end
  end

  defp dec(<<b, rest::binary>>, _t) when b < 0x80, do: {b, rest}
  defp dec(<<b, rest::binary>>, t) when b in 0x80..0x8F, do: dec_map(b - 0x80, rest, t, [])
  defp dec(<<b, rest::binary>>, t) when b in 0x90..0x9F, do: dec_array(b - 0x90, rest, t, [])
  defp dec(<<b, rest::binary>>, _t) when b in 0xA0..0xBF, do: take_str(b - 0xA0, rest)
  defp dec(<<0xC0, rest::binary>>, _t), do: {nil, rest}
  defp dec(<<0xC2, rest::binary>>, _t), do: {false, rest}
  defp dec(<<0xC3, rest::binary>>, _t), do: {true, rest}
  defp dec(<<0xC4, n, rest::binary>>, t), do: take_bin(n, rest, t)
  defp dec(<<0xC5, n::16, rest::binary>>, t), do: take_bin(n, rest, t)
  defp dec(<<0xC6, n::32, rest::binary>>, t), do: take_bin(n, rest, t)
  defp dec(<<0xC7, n, type::signed-8, rest::binary>>, _t), do: take_ext(type, n, rest)
  defp dec(<<0xC8, n::16, type::signed-8, rest::binary>>, _t), do: take_ext(type, n, rest)
  defp dec(<<0xC9, n::32, type::signed-8, rest::binary>>, _t), do: take_ext(type, n, rest)
  defp dec(<<0xCA, f::binary-4, rest::binary>>, _t), do: {float32(f), rest}
  defp dec(<<0xCB, f::binary-8, rest::binary>>, _t), do: {float64(f), rest}
  defp dec(<<0xCC, i, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xCD, i::16, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xCE, i::32, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xCF, i::64, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xD0, i::signed-8, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xD1, i::signed-16, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xD2, i::signed-32, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xD3, i::signed-64, rest::binary>>, _t), do: {i, rest}
  defp dec(<<0xD4, type::signed-8, rest::binary>>, _t), do: take_ext(type, 1, rest)
  defp dec(<<0xD5, type::signed-8, rest::binary>>, _t), do: take_ext(type, 2, rest)
  defp dec(<<0xD6, type::signed-8, rest::binary>>, _t), do: take_ext(type, 4, rest)
  defp dec(<<0xD7, type::signed-8, rest::binary>>, _t), do: take_ext(type, 8, rest)
  defp dec(<<0xD8, type::signed-8, rest::binary>>, _t), do: take_ext(type, 16, rest)
  defp dec(<<0xD9, n, rest::binary>>, _t), do: take_str(n, rest)
  defp dec(<<0xDA, n::16, rest::binary>>, _t), do: take_str(n, rest)
  defp dec(<<0xDB, n::32, rest::binary>>, _t), do: take_str(n, rest)
  defp dec(<<0xDC, n::16, rest::binary>>, t), do: dec_array(n, rest, t, [])
  defp dec(<<0xDD, n::32, rest::binary>>, t), do: dec_array(n, rest, t, [])
  defp dec(<<0xDE, n::16, rest::binary>>, t), do: dec_map(n, rest, t, [])
  defp dec(<<0xDF, n::32, rest::binary>>, t), do: dec_map(n, rest, t, [])
  defp dec(<<b, rest::binary>>, _t) when b >= 0xE0, do: {b - 0x100, rest}
  defp dec(<<0xC1, _::binary>>, _t), do: throw({:msgpack, {:invalid_byte, 0xC1}})
  defp dec(_, _t), do: throw({:msgpack, :truncated})

  defp take_str(n, bin) do
    case bin do
      <<s::binary-size(n), rest::binary>> -> {s, rest}
      _ -> throw({:msgpack, :truncated})
    end
  end

  defp take_bin(n, bin, tagged) do
    case bin do
      <<s::binary-size(n), rest::binary>> -> {if(tagged, do: %Bin{data: s}, else: s), rest}
      _ -> throw({:msgpack, :truncated})
    end
  end

  defp take_ext(type, n, bin) do
    case bin do
      <<d::binary-size(n), rest::binary>> -> {%Ext{type: type, data: d}, rest}
      _ -> throw({:msgpack, :truncated})
    end
  end

  defp dec_array(0, rest, _t, acc), do: {:lists.reverse(acc), rest}

  defp dec_array(n, bin, t, acc) do
    {v, rest} = dec(bin, t)
    dec_array(n - 1, rest, t, [v | acc])
  end

  defp dec_map(0, rest, _t, acc), do: {:maps.from_list(acc), rest}

  defp dec_map(n, bin, t, acc) do
    {k, rest} = dec(bin, t)
    {v, rest} = dec(rest, t)
    dec_map(n - 1, rest, t, [{k, v} | acc])
  end

  defp float64(<<0::1, 0x7FF::11, 0::52>>), do: :infinity
  defp float64(<<1::1, 0x7FF::11, 0::52>>), do: :neg_infinity
  defp float64(<<_::1, 0x7FF::11, _::52>>), do: :nan
  defp float64(<<f::float-64>>), do: f

  defp float32(<<0::1, 0xFF::8, 0::23>>), do: :infinity
  defp float32(<<1::1, 0xFF::8, 0::23>>), do: :neg_infinity
  defp float32(<<_::1, 0xFF::8, _::23>>), do: :nan
  defp float32(<<f::float-32>>), do: f
end
