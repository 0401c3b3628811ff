defmodule Starweave.FineTune.Test.JSON do
  @moduledoc false
  # A small JSON decoder for the test vectors (Elixir 1.14 has none, and no Hex packages are fetched).
  # Objects keep their key order as a list of pairs under {:object, pairs}.

  def decode!(text) do
    {v, rest} = value(skip(text))
    "" = skip(rest)
    v
  end

  defp skip(<<c, rest::binary>>) when c in [?\s, ?\n, ?\r, ?\t], do: skip(rest)
  defp skip(s), do: s

  defp value(<<"{", rest::binary>>), do: object(skip(rest), [])
  defp value(<<"[", rest::binary>>), do: array(skip(rest), [])
  defp value(<<"\"", rest::binary>>), do: string(rest, [])
  defp value(<<"true", rest::binary>>), do: {true, rest}
  defp value(<<"false", rest::binary>>), do: {false, rest}
  defp value(<<"null", rest::binary>>), do: {nil, rest}
  defp value(s), do: number(s)

  defp object(<<"}", rest::binary>>, acc), do: {{:object, Enum.reverse(acc)}, rest}

  defp object(<<"\"", rest::binary>>, acc) do
    {k, rest} = string(rest, [])
    <<":", rest::binary>> = skip(rest)
    {v, rest} = value(skip(rest))

    case skip(rest) do
      <<",", rest::binary>> -> object(skip(rest), [{k, v} | acc])
      <<"}", rest::binary>> -> {{:object, Enum.reverse([{k, v} | acc])}, rest}
    end
  end

  defp array(<<"]", rest::binary>>, acc), do: {Enum.reverse(acc), rest}

  defp array(s, acc) do
    {v, rest} = value(s)

    case skip(rest) do
      <<",", rest::binary>> -> array(skip(rest), [v | acc])
      <<"]", rest::binary>> -> {Enum.reverse([v | acc]), rest}
    end
  end

  defp string(<<"\"", rest::binary>>, acc), do: {IO.iodata_to_binary(Enum.reverse(acc)), rest}

  defp string(<<"\\u", h::binary-4, rest::binary>>, acc) do
    cp = String.to_integer(h, 16)

    if cp in 0xD800..0xDBFF do
      <<"\\u", l::binary-4, rest2::binary>> = rest
      lo = String.to_integer(l, 16)
      string(rest2, [<<0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)::utf8>> | acc])
    else
      string(rest, [<<cp::utf8>> | acc])
    end
  end

  defp string(<<"\\", c, rest::binary>>, acc) do
    ch = %{?" => "\"", ?\\ => "\\", ?/ => "/", ?b => "\b", ?f => "\f", ?n => "\n", ?r => "\r", ?t => "\t"}[c]
    string(rest, [ch | acc])
  end

  defp string(<<c::utf8, rest::binary>>, acc), do: string(rest, [<<c::utf8>> | acc])

  defp number(s) do
    [num | _] = Regex.run(~r/^-?\d+(\.\d+)?([eE][+-]?\d+)?/, s)
    rest = binary_part(s, byte_size(num), byte_size(s) - byte_size(num))

    v =
      if String.contains?(num, [".", "e", "E"]),
        do: elem(Float.parse(num), 0),
        else: String.to_integer(num)

    {v, rest}
  end

  # JSON text of maps (atom or string keys), lists, strings, numbers, booleans and nil (run configs)
  def encode(m) when is_map(m),
    do: ["{", Enum.map_intersperse(m, ",", fn {k, v} -> [encode(to_string(k)), ":", encode(v)] end), "}"]

  def encode(l) when is_list(l), do: ["[", Enum.map_intersperse(l, ",", &encode/1), "]"]
  def encode(b) when is_binary(b), do: [?", String.replace(b, ["\\", "\""], &("\\" <> &1)), ?"]
  def encode(nil), do: "null"
  def encode(a) when is_boolean(a), do: to_string(a)
  def encode(n) when is_number(n), do: to_string(n)
end
