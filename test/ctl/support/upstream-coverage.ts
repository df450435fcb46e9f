/**
 * Upstream mdevctl's own test cases (test/ctl/upstream-cases.json) and the
 * differential scenarios that cover them (each scenario's "upstream" list):
 * every upstream case must be covered, or say why it cannot be, and the map
 * test/ctl/upstream-coverage.md is generated from the two lists.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { Scenario } from './scenarios.js';

export const UPSTREAM_CASES_FILE = new URL('../upstream-cases.json', import.meta.url).pathname;
export const COVERAGE_MAP_FILE = new URL('../upstream-coverage.md', import.meta.url).pathname;

const casesSpec = z.strictObject({
  about: z.string().min(1),
  /** FILE:TEST_FUNCTION/CASE */
  cases: z.array(z.string().regex(/^[a-z]+\.rs:test_\w+\/.+$/)).min(1),
  /** case id -> why no scenario can cover it */
  uncovered: z.record(z.string(), z.string().min(1)),
});

export type UpstreamCases = z.infer<typeof casesSpec>;

export function loadUpstreamCases(): UpstreamCases {
  return casesSpec.parse(JSON.parse(fs.readFileSync(UPSTREAM_CASES_FILE, 'utf8')));
}

/** case id -> the scenarios that name it */
export function coverage(scenarios: readonly Scenario[]): Map<string, Scenario[]> {
  const out = new Map<string, Scenario[]>();
  for (const s of scenarios) {
    for (const id of s.upstream) out.set(id, [...(out.get(id) ?? []), s]);
  }
  return out;
}

/** The coverage map as Markdown, one table per upstream test file. */
export function coverageMap(scenarios: readonly Scenario[], upstream: UpstreamCases): string {
  const covered = coverage(scenarios);
  const files = [...new Set(upstream.cases.map((c) => c.slice(0, c.indexOf(':'))))];
  const lines = [
    '# Upstream mdevctl test cases and the scenarios that cover them',
    '',
    '<!-- Generated from test/ctl/upstream-cases.json and the "upstream" lists of',
    '     test/ctl/scenarios/*.json by',
    '     node --import tsx test/ctl/support/diff-cli.ts --coverage',
    '     The compat test fails when this file is out of date. -->',
    '',
    `${upstream.cases.length} upstream cases; ${upstream.cases.filter((c) => covered.has(c)).length} covered by ` +
      `${new Set([...covered.values()].flat().map((s) => s.name)).size} scenarios. ` +
      'A scenario marked (1.4.0) runs only against mdevctl 1.4.0 (the behaviour is newer than 1.2.0).',
    '',
  ];
  for (const file of files) {
    lines.push(`## src/tests/${file}`, '', '| upstream case | scenarios |', '|---|---|');
    for (const id of upstream.cases.filter((c) => c.startsWith(`${file}:`))) {
      const by = covered.get(id) ?? [];
      const cell =
        by.length > 0
          ? by.map((s) => `\`${s.name}\`${s.refs.includes('1.2.0') ? '' : ' (1.4.0)'}`).join(', ')
          : `not covered: ${upstream.uncovered[id] ?? '?'}`;
      lines.push(`| ${id.slice(file.length + 1)} | ${cell} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
