// Integration testing before promotion: suites from YAML / JSON with errors naming field paths and
// lines, the JSON-schema subset, and a real suite run through the serving engine: a case built from
// v1's real answer passes on v1 and fails on v2 (the adapters differ), so v2's promotion is refused with
// the failure listed, the result stored with the version, and v1 is promoted.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkResponse, loadSuite, parseSuite, promoteWithTests, runSuite, testVersion } from '../../src/deploy/integration.js';
import { checkJsonSchema, parseJsonOutput, validateJsonSchema } from '../../src/deploy/integration-schema.js';
import { Registry } from '../../src/deploy/registry.js';
import { ServingEngine } from '../../src/deploy/serving.js';
import { tinyBase, tmp, writeAdapter } from './fixtures.js';

const resp = (text: string, over: Partial<{ latencyMs: number; completionTokens: number; finishReason: 'stop_token' | 'length' }> = {}) => ({ text, latencyMs: 10, completionTokens: 5, finishReason: 'stop_token' as const, ...over });

describe('integration suites', () => {
  test('YAML suite: parsed, defaults applied; errors name the path and line', () => {
    const d = tmp();
    const good = join(d, 'smoke.yaml');
    writeFileSync(
      good,
      `defaults:\n  max_new_tokens: 16\ncases:\n  - name: greets\n    messages:\n      - { role: user, content: "hi" }\n    expect:\n      contains: hello\n      regex: ["/^h/i"]\n      max_tokens: 10\n`,
    );
    const s = loadSuite(good);
    expect(s.name).toBe('smoke');
    expect(s.defaults).toEqual({ max_new_tokens: 16, temperature: 0 });
    expect(s.cases[0].expect).toMatchObject({ contains: ['hello'], regex: ['/^h/i'], max_tokens: 10, ignore_case: false });

    const bad = join(d, 'bad.yaml');
    writeFileSync(bad, `cases:\n  - name: a\n    messages: [{ role: user, content: x }]\n    expect:\n      regex: "(unclosed"\n      json_schema: { type: object, format: email }\n  - name: a\n    messages: [{ role: robot, content: x }]\n    expect: {}\n`);
    let msg = '';
    try {
      loadSuite(bad);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/bad.yaml:5: cases\[0\].expect.regex: not a valid regular expression/);
    expect(msg).toMatch(/bad.yaml:6: cases\[0\].expect.json_schema: format: keyword 'format' is not supported/);
    expect(msg).toMatch(/bad.yaml:8: cases\[1\].messages\[0\].role: /);
    const dup = { cases: [0, 1].map(() => ({ name: 'a', messages: [{ role: 'user', content: 'x' }], expect: {} })) };
    expect(() => parseSuite(dup)).toThrow(/cases\[1\].name: duplicate case name 'a' \(also cases\[0\]\)/);
    writeFileSync(join(d, 'broken.json'), '{"cases": [');
    expect(() => loadSuite(join(d, 'broken.json'))).toThrow(/broken.json: not valid JSON/);
    expect(() => parseSuite({ cases: [] })).toThrow(/cases: a suite needs at least one case/);
  });

  test('checks: contains, regex, JSON schema, latency, tokens, finished', () => {
    const e = parseSuite({ cases: [{ name: 'x', messages: [{ role: 'user', content: 'q' }], expect: { contains: ['Gen', 'server'], not_contains: 'error', ignore_case: true, regex: '\\bOTP\\b', not_regex: '/TODO/', max_latency_ms: 50, max_tokens: 8, finished: true } }] }).cases[0].expect;
    expect(checkResponse(e, resp('GenServer is OTP'))).toEqual([]);
    const f = checkResponse(e, resp('genserver ERROR: TODO', { latencyMs: 75.5, completionTokens: 9, finishReason: 'length' }));
    expect(f.map((x) => x.check)).toEqual(['not_contains', 'regex', 'not_regex', 'max_latency_ms', 'max_tokens', 'finished']);
    expect(f[3].message).toBe('latency 75.5 ms > 50 ms');

    const schema = { type: 'object', required: ['name', 'restart'], additionalProperties: false, properties: { name: { type: 'string', minLength: 2 }, restart: { enum: ['permanent', 'temporary', 'transient'] }, children: { type: 'array', items: { type: 'integer', minimum: 0 }, maxItems: 3 } } };
    expect(checkJsonSchema(schema)).toEqual([]);
    expect(validateJsonSchema(schema, { name: 'sup', restart: 'permanent', children: [1, 2] })).toEqual([]);
    expect(validateJsonSchema(schema, { name: 's', restart: 'always', children: [1, -2, 3.5, 4], extra: 1 })).toEqual([
      '$.name: shorter than 2 characters',
      '$.restart: "always" is not one of ["permanent","temporary","transient"]',
      '$.children: more than 3 items',
      '$.children[1]: -2 < minimum 0',
      '$.children[2]: expected integer, got number',
      '$.extra: property not allowed',
    ]);
    expect(validateJsonSchema(schema, [])).toEqual(['$: expected object, got array']);
    expect(validateJsonSchema({ anyOf: [{ type: 'string' }, { type: 'null' }] }, 3)).toEqual(['$: matches none of anyOf']);
    expect(validateJsonSchema({ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 3)).toEqual(['$: matches 2 of oneOf (exactly 1 needed)']);
    expect(checkJsonSchema({ $ref: '#/x', properties: { a: { type: 'strin' } } })).toEqual([
      "$ref: keyword '$ref' is not supported (supported: type, enum, const, properties, required, additionalProperties, items, minItems, maxItems, minLength, maxLength, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, allOf, oneOf, not)",
      "properties.a.type: 'strin' is not a JSON Schema type (null, boolean, object, array, number, integer, string)",
    ]);
    expect(parseJsonOutput('Sure:\n```json\n{"a": 1}\n```')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJsonOutput(' [1,2] ')).toEqual({ ok: true, value: [1, 2] });
    expect(parseJsonOutput('nope').ok).toBe(false);
    const js = parseSuite({ cases: [{ name: 'j', messages: [{ role: 'user', content: 'q' }], expect: { json_schema: schema } }] }).cases[0].expect;
    expect(checkResponse(js, resp('{"name": "sup", "restart": "transient"}'))).toEqual([]);
    expect(checkResponse(js, resp('{"name": "sup"}'))[0].message).toBe("the answer's JSON breaks the schema: $: missing required property 'restart'");
    expect(checkResponse(js, resp('GenServer'))[0].message).toMatch(/^the answer is not JSON/);
  });

  test('a real suite on two versions: v2 refused with its failures listed, v1 promoted; results stored', async () => {
    const base = await tinyBase();
    const reg = new Registry(join(tmp(), 'store'));
    await reg.register({ source: await writeAdapter(join(tmp(), 'a1'), base, 11), base });
    await reg.register({ source: await writeAdapter(join(tmp(), 'a2'), base, 12), base });
    const engine = new ServingEngine(reg);
    try {
      const q = [{ role: 'user' as const, content: 'Name one OTP behaviour.' }];
      const v1 = await engine.generate('v1', { messages: q, maxNewTokens: 12 });
      const v2 = await engine.generate('v2', { messages: q, maxNewTokens: 12 });
      expect(v1.text.length).toBeGreaterThan(3);
      expect(v2.text).not.toBe(v1.text);
      const suite = parseSuite({
        name: 'release',
        defaults: { max_new_tokens: 12 },
        cases: [
          { name: 'answers like v1', messages: q, expect: { contains: v1.text, max_tokens: 12 } },
          { name: 'not empty', messages: q, expect: { regex: '\\S' } },
          { name: 'is json', messages: q, expect: { json_schema: { type: 'object' } } },
        ],
      });
      // the JSON case fails on both: a random tiny model does not write JSON
      const r1 = await runSuite(suite, (req) => engine.generate('v1', req), 'v1');
      expect(r1.cases.map((c) => c.passed)).toEqual([true, true, false]);
      expect(r1.cases[0].output).toBe(v1.text);

      const passing = { ...suite, cases: suite.cases.slice(0, 2) };
      const refused = await promoteWithTests(engine, { version: 'v2', channel: 'production', suite: passing });
      expect(refused.promoted).toBe(false);
      expect(refused.failures).toContain('v2 failed 1 of 2 cases of suite release; not promoted to production:');
      expect(refused.failures).toContain(`  answers like v1: contains: the answer does not contain ${JSON.stringify(v1.text.length > 60 ? v1.text.slice(0, 57) + '...' : v1.text)}`);
      expect(reg.current('production')).toBeNull();
      // stored with the version, and a plain promote now refuses it too
      const stored = reg.show('v2').tests;
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ suite: 'release', passed: false, total: 2, failed: 1 });
      expect(JSON.parse(readFileSync(stored[0].file, 'utf8')).cases[0].output).toBe(v2.text);
      await expect(reg.promote({ version: 'v2', channel: 'production' })).rejects.toThrow(/v2 failed its last integration test/);

      const ok = await promoteWithTests(engine, { version: 'v1', channel: 'production', suite: passing, reason: 'release suite passed' });
      expect(ok.promoted).toBe(true);
      expect(ok.entry).toMatchObject({ action: 'promote', version: 'v1', reason: 'release suite passed' });
      expect(reg.current('production')).toBe('v1');
      const t = await testVersion(engine, '@production', passing);
      expect(t).toMatchObject({ version: 'v1', passed: true, total: 2, failed: 0 });
      expect(existsSync(reg.show('v1').tests[1].file)).toBe(true);
      expect(reg.events().filter((e) => e.type === 'test').map((e) => [e.version, e.passed])).toEqual([['v2', false], ['v1', true], ['v1', true]]);
    } finally {
      await engine.close();
    }
  });
});
