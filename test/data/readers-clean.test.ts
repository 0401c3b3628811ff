// Readers (formats, documents, Elixir, generators), cleaning and scrubbing, validation with rejects.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDataset, emptyScrubCounts, generateExamples, normalizeText, parseElixir, scrub, splitMarkdown } from '../../src/data/index.js';
import { chat, jsonl, tempDir, write } from './helpers.js';

describe('interaction readers', () => {
  test('all four formats become canonical messages; bad lines are rejected with file:line and field path', async () => {
    const dir = tempDir();
    write(
      dir,
      'in/a.jsonl',
      jsonl([
        { id: 'x1', node: 'starweave@n1', category: 'code_understanding', rating: 5, messages: [{ role: 'user', content: 'What does handle_continue do in a GenServer?', timestamp: '2025-01-01T00:00:00Z' }, { role: 'assistant', content: 'It runs right after init, before any other message.' }] },
        { messages: [{ role: 'user', content: 'How do I list the nodes of the cluster?' }, { role: 'assistant', content: 'Call Node.list() on any connected node.' }] },
        { conversations: [{ from: 'human', value: 'Which supervisor strategy restarts later siblings too?' }, { from: 'gpt', value: 'rest_for_one restarts the crashed child and those started after it.' }] },
        { instruction: 'Explain what :pg is used for in a BEAM cluster.', input: '', output: 'Distributed process groups with eventually consistent membership.' },
        '{"messages": [',
        { messages: [{ role: 'user', content: 'hello there, how are you doing today?' }, { role: 'robot', content: 'fine thanks, and you?' }] },
        { text: 'a line in no known format at all' },
      ]),
    );
    const rejects = join(dir, 'rejects.jsonl');
    const r = await buildDataset({ config: { sources: [{ kind: 'interactions', path: 'in' }], dedup: { near: false } }, baseDir: dir, dryRun: true, rejectsFile: rejects });
    expect(r.report.read).toBe(7);
    expect(r.report.kept).toBe(4);
    const lines = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.reason, l.origin.file, l.origin.line, l.path])).toEqual([
      ['parse_error', 'in/a.jsonl', 5, undefined],
      ['schema', 'in/a.jsonl', 6, 'messages[1].role'],
      ['unknown_format', 'in/a.jsonl', 7, undefined],
    ]);
    expect(lines[1].record.messages[1].role).toBe('robot'); // the record itself is kept
    expect(r.report.categoryInferred).toBe(3);
  });

  test('strict mode fails the build, naming file:line and path, and writes no version', async () => {
    const dir = tempDir();
    write(dir, 'a.jsonl', jsonl([chat('How do I read the pattern registry?', 'Call Registry.patterns_for/1 with the signal.'), { messages: [{ role: 'user', content: 'x' }] }]));
    await expect(buildDataset({ config: { sources: [{ kind: 'interactions', path: 'a.jsonl' }], strict: true }, baseDir: dir, store: join(dir, 'store') })).rejects.toThrow(/a\.jsonl:2 at messages: .*at least a user and an assistant/);
  });
});

describe('documents and code', () => {
  test('markdown splits on headings (not inside code fences) with heading paths and lines', () => {
    const ps = splitMarkdown('# Title\n\nintro text\n\n## Windows\n\nabout windows\n\n```\n# not a heading\n```\n\n### Count\n\ncount windows', 4000);
    expect(ps.map((p) => [p.headings.join(' > '), p.line])).toEqual([
      ['Title', 1],
      ['Title > Windows', 5],
      ['Title > Windows > Count', 13],
    ]);
    expect(ps[1].text).toContain('# not a heading');
  });

  test('elixir modules pair functions with @doc/@spec and their full source, clauses merged', () => {
    const src = readFileSync(join(process.cwd(), 'examples/elixir/pattern_detector.ex'), 'utf8');
    const [m] = parseElixir(src);
    expect(m.name).toBe('Starweave.Patterns.Detector');
    expect(m.moduledoc).toMatch(/^A GenServer that scores closed windows/);
    expect(m.uses).toEqual(['GenServer']);
    const score = m.functions.find((f) => f.name === 'score')!;
    expect(score.arity).toBe(2);
    expect(score.spec).toMatch(/^score\(signal\(\), window\(\)\)/);
    expect(score.doc).toMatch(/insufficient_data/);
    const hc = m.functions.find((f) => f.name === 'handle_call')!;
    expect(hc.source.match(/def handle_call/g)).toHaveLength(2);
    expect(hc.source.trimEnd().endsWith('end')).toBe(true);
  });

  test('generators are deterministic per seed and differ across seeds', () => {
    const a = [...generateExamples(5, 3)];
    const b = [...generateExamples(5, 3)];
    const c = [...generateExamples(6, 3)];
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(new Set(a.map((x) => x.category)).size).toBe(4);
    expect(a.every((x) => x.messages[x.messages.length - 1].role === 'assistant')).toBe(true);
  });
});

describe('cleaning', () => {
  test('normalization: NFC, CRLF, controls, zero-width, trailing spaces, blank runs; indentation kept', () => {
    const s = normalizeText('  Cafe\u0301\r\n\tdef x do  \r\n\n\n\n  end\u200b\u0007 ', 'NFC');
    expect(s).toBe('Café\n\tdef x do\n\n  end');
  });

  test('scrubs keys, tokens, emails, IPs and home paths, counting each', () => {
    const counts = emptyScrubCounts();
    const out = scrub(
      'key sk-proj-abcdefghijklmnopqrstuv123, token ghp_abcdefghijklmnopqrstuvwxyz0123456789, mail ada@example.org, ' +
        'host 10.1.2.3 and fe80::1ff:fe23:4567:890a, local 127.0.0.1, path /home/ada/starweave, password: hunter2hunter2, Authorization: Bearer abcdefghijklmnopqrstuvwx',
      counts,
    );
    expect(out).toBe('key <API_KEY>, token <API_KEY>, mail <EMAIL>, host <IP> and <IP>, local 127.0.0.1, path /home/<USER>/starweave, password: <SECRET>, Authorization: Bearer <TOKEN>');
    expect(counts).toMatchObject({ api_key: 2, email: 1, ipv4: 1, ipv6: 1, home_path: 1, secret_assignment: 1, bearer_token: 1 });
  });

  test('the build scrubs and counts, and bounds reject too short and too long records', async () => {
    const dir = tempDir();
    write(dir, 'a.jsonl', jsonl([chat('My node at 192.168.7.20 is down, mail me at bob@corp.example', 'Check the net tick and the cookie on that host first.'), chat('hi', 'yo'), chat('long '.repeat(50), 'x'.repeat(500))]));
    const r = await buildDataset({ config: { sources: [{ kind: 'interactions', path: 'a.jsonl' }], clean: { minChars: 10, maxMessageChars: 400 } }, baseDir: dir, dryRun: true });
    expect(r.report.scrubbed.ipv4).toBe(1);
    expect(r.report.scrubbed.email).toBe(1);
    expect(r.report.rejects.too_short).toBe(1);
    expect(r.report.rejects.too_long).toBe(1);
    expect(r.firstRejects.find((x) => x.reason === 'too_long')!.path).toBe('messages[1].content');
  });
});
