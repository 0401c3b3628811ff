// The JSON Schema subset that integration-test cases check model outputs against (draft 2020-12
// keywords, validated here rather than by a library): type (one or a list), enum, const, properties,
// required, additionalProperties (boolean or schema), items (one schema), minItems / maxItems,
// minLength / maxLength, pattern, minimum / maximum / exclusiveMinimum / exclusiveMaximum, anyOf,
// allOf, oneOf, not; annotations (title, description, $schema, $id, $comment, default, examples) are
// ignored. Any other keyword ($ref, patternProperties, format, ...) is refused when the suite is loaded,
// so a schema is never silently checked less than it says.

export type JsonSchema = boolean | { [k: string]: unknown };

const TYPES = ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'] as const;
const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'default', 'examples']);
const KEYWORDS = new Set([
  'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'minLength',
  'maxLength', 'pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'anyOf', 'allOf', 'oneOf', 'not',
]);

/** Problems with a schema itself (unsupported keyword, wrong keyword value), as `path: message`. */
export function checkJsonSchema(schema: unknown, path = ''): string[] {
  if (typeof schema === 'boolean') return [];
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return [`${path || '(root)'}: a schema is an object or a boolean`];
  const s = schema as Record<string, unknown>;
  const out: string[] = [];
  const at = (k: string) => (path ? `${path}.${k}` : k);
  for (const k of Object.keys(s)) {
    if (ANNOTATIONS.has(k)) continue;
    if (!KEYWORDS.has(k)) out.push(`${at(k)}: keyword '${k}' is not supported (supported: ${[...KEYWORDS].join(', ')})`);
  }
  if ('type' in s) {
    const ts = Array.isArray(s.type) ? s.type : [s.type];
    for (const t of ts) if (!TYPES.includes(t as (typeof TYPES)[number])) out.push(`${at('type')}: '${String(t)}' is not a JSON Schema type (${TYPES.join(', ')})`);
  }
  for (const k of ['minItems', 'maxItems', 'minLength', 'maxLength'])
    if (k in s && !(Number.isInteger(s[k]) && (s[k] as number) >= 0)) out.push(`${at(k)}: a non-negative integer is expected`);
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) if (k in s && typeof s[k] !== 'number') out.push(`${at(k)}: a number is expected`);
  if ('pattern' in s) {
    try {
      new RegExp(String(s.pattern), 'u');
    } catch (e) {
      out.push(`${at('pattern')}: ${(e as Error).message}`);
    }
  }
  if ('required' in s && !(Array.isArray(s.required) && s.required.every((x) => typeof x === 'string'))) out.push(`${at('required')}: a list of property names is expected`);
  if ('enum' in s && !Array.isArray(s.enum)) out.push(`${at('enum')}: a list is expected`);
  if ('properties' in s) {
    if (!s.properties || typeof s.properties !== 'object' || Array.isArray(s.properties)) out.push(`${at('properties')}: an object of schemas is expected`);
    else for (const [k, v] of Object.entries(s.properties)) out.push(...checkJsonSchema(v, `${at('properties')}.${k}`));
  }
  if ('additionalProperties' in s) out.push(...checkJsonSchema(s.additionalProperties, at('additionalProperties')));
  if ('items' in s) {
    if (Array.isArray(s.items)) out.push(`${at('items')}: one schema is expected (tuple forms are not supported)`);
    else out.push(...checkJsonSchema(s.items, at('items')));
  }
  if ('not' in s) out.push(...checkJsonSchema(s.not, at('not')));
  for (const k of ['anyOf', 'allOf', 'oneOf']) {
    if (!(k in s)) continue;
    if (!Array.isArray(s[k]) || !(s[k] as unknown[]).length) out.push(`${at(k)}: a non-empty list of schemas is expected`);
    else (s[k] as unknown[]).forEach((x, i) => out.push(...checkJsonSchema(x, `${at(k)}[${i}]`)));
  }
  return out;
}

function typeOf(v: unknown): (typeof TYPES)[number] {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as 'boolean' | 'object' | 'string';
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Where a value breaks the schema, as `$.path: message` (empty: valid). */
export function validateJsonSchema(schema: JsonSchema, value: unknown, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  const s = schema;
  const out: string[] = [];
  const t = typeOf(value);
  if ('type' in s) {
    const ts = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    if (!ts.includes(t) && !(t === 'integer' && ts.includes('number'))) return [`${path}: expected ${ts.join(' or ')}, got ${t}`];
  }
  if ('const' in s && !equal(value, s.const)) out.push(`${path}: expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.some((e) => equal(e, value))) out.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof value === 'string') {
    const n = [...value].length;
    if (typeof s.minLength === 'number' && n < s.minLength) out.push(`${path}: shorter than ${s.minLength} characters`);
    if (typeof s.maxLength === 'number' && n > s.maxLength) out.push(`${path}: longer than ${s.maxLength} characters`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) out.push(`${path}: does not match /${s.pattern}/`);
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) out.push(`${path}: ${value} < minimum ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) out.push(`${path}: ${value} > maximum ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) out.push(`${path}: ${value} <= exclusiveMinimum ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) out.push(`${path}: ${value} >= exclusiveMaximum ${s.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) out.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) out.push(`${path}: more than ${s.maxItems} items`);
    if ('items' in s) value.forEach((v, i) => out.push(...validateJsonSchema(s.items as JsonSchema, v, `${path}[${i}]`)));
  }
  if (t === 'object') {
    const o = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, JsonSchema>;
    if (Array.isArray(s.required)) for (const k of s.required as string[]) if (!(k in o)) out.push(`${path}: missing required property '${k}'`);
    for (const [k, v] of Object.entries(o)) {
      const at = /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
      if (k in props) out.push(...validateJsonSchema(props[k], v, at));
      else if ('additionalProperties' in s) {
        if (s.additionalProperties === false) out.push(`${at}: property not allowed`);
        else out.push(...validateJsonSchema(s.additionalProperties as JsonSchema, v, at));
      }
    }
  }
  if (Array.isArray(s.allOf)) for (const sub of s.allOf) out.push(...validateJsonSchema(sub as JsonSchema, value, path));
  if (Array.isArray(s.anyOf) && !s.anyOf.some((sub) => !validateJsonSchema(sub as JsonSchema, value, path).length)) out.push(`${path}: matches none of anyOf`);
  if (Array.isArray(s.oneOf)) {
    const n = s.oneOf.filter((sub) => !validateJsonSchema(sub as JsonSchema, value, path).length).length;
    if (n !== 1) out.push(`${path}: matches ${n} of oneOf (exactly 1 needed)`);
  }
  if ('not' in s && !validateJsonSchema(s.not as JsonSchema, value, path).length) out.push(`${path}: matches the schema under 'not'`);
  return out;
}

/** The JSON a model answered: the whole trimmed text, or the body of a ```json fenced block in it. */
export function parseJsonOutput(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  const t = text.trim();
  const fenced = /```(?:json)?\s*\n([\s\S]*?)\n?```/.exec(t);
  for (const candidate of fenced ? [t, fenced[1]] : [t]) {
    try {
      return { ok: true, value: JSON.parse(candidate) as unknown };
    } catch {
      // the next candidate
    }
  }
  try {
    JSON.parse(t);
    return { ok: true, value: null };
  } catch (e) {
    return { ok: false, error: `not JSON (${(e as Error).message})` };
  }
}
