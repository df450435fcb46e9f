/**
 * Where the drop-in is expected to differ from each reference mdevctl:
 * test/ctl/known-differences/<release>.json, one file per reference.
 *
 *   {
 *     "reference": "1.4.0",
 *     "target": false,             // true: the release bin/mdevctl claims to be
 *     "about": "...",
 *     "differences": {
 *       "<scenario>": [
 *         {
 *           "kind": "todo",        // see entrySpec
 *           "differs": ["stdout-text", "step 2: exit-code", "tree etc/mdevctl.d/P/U"],
 *           "why": "what the reference does and why the drop-in does not (yet)"
 *         }
 *       ]
 *     }
 *   }
 *
 * One scenario may hold several entries, so that a deliberate difference and
 * a to-do in the same scenario stay apart; each signature is in one entry.
 *
 * The compat test fails on any difference a file does not list, and on any
 * listed difference that no longer occurs (so a fixed to-do must leave the
 * list). Deliberate differences must also be explained in
 * docs/mdevctl-compat.md ("Scenarios that differ on purpose").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { MdevctlVersion } from '../../support/capabilities.js';
import type { Difference } from './differential.js';

export const KNOWN_DIFFERENCES_DIR = new URL('../known-differences/', import.meta.url).pathname;
const COMPAT_DOC = new URL('../../../docs/mdevctl-compat.md', import.meta.url).pathname;

const entrySpec = z.strictObject({
  /**
   * deliberate: the drop-in does better than this release on purpose (a
   *   panic, a plain bug, a lost listing), documented in docs/mdevctl-compat.md;
   * newer-upstream: a later mdevctl release changed this and the drop-in
   *   follows the later one;
   * todo: not implemented yet; allowed only where the file is not the target.
   */
  kind: z.enum(['deliberate', 'newer-upstream', 'todo']),
  differs: z.array(z.string().min(1)).min(1),
  why: z.string(),
});

const fileSpec = z.strictObject({
  reference: z.enum(['1.2.0', '1.4.0']),
  target: z.boolean(),
  about: z.string().min(1),
  differences: z.record(z.string(), z.array(entrySpec).min(1)),
});

export type KnownDifference = z.infer<typeof entrySpec>;
export type KnownDifferences = z.infer<typeof fileSpec>;

export function knownDifferencesFile(version: MdevctlVersion): string {
  return path.join(KNOWN_DIFFERENCES_DIR, `${version}.json`);
}

export function loadKnownDifferences(version: MdevctlVersion): KnownDifferences {
  const file = knownDifferencesFile(version);
  const r = fileSpec.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!r.success) {
    throw new Error(
      `${file}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  if (r.data.reference !== version)
    throw new Error(`${file}: says it is about ${r.data.reference}`);
  return r.data;
}

/** Every signature the file lists for `scenario`. */
export function listedSignatures(known: KnownDifferences, scenario: string): string[] {
  return (known.differences[scenario] ?? []).flatMap((e) => e.differs);
}

export interface Verdict {
  /** differences no entry lists, by scenario */
  readonly unexpected: ReadonlyMap<string, readonly Difference[]>;
  /** listed differences that did not occur, by scenario */
  readonly vanished: ReadonlyMap<string, readonly string[]>;
}

/** Hold what was seen (scenario -> differences, for the scenarios run) against the list. */
export function judge(
  known: KnownDifferences,
  seen: ReadonlyMap<string, readonly Difference[]>,
): Verdict {
  const unexpected = new Map<string, Difference[]>();
  const vanished = new Map<string, string[]>();
  for (const [scenario, diffs] of seen) {
    const listed = new Set(listedSignatures(known, scenario));
    const extra = diffs.filter((d) => !listed.has(d.signature));
    if (extra.length > 0) unexpected.set(scenario, extra);
    const gone = [...listed].filter((s) => !diffs.some((d) => d.signature === s));
    if (gone.length > 0) vanished.set(scenario, gone);
  }
  return { unexpected, vanished };
}

/** A verdict as a message that says what to do about it. */
export function explain(version: MdevctlVersion, verdict: Verdict): string {
  const file = path.relative(process.cwd(), knownDifferencesFile(version));
  const out: string[] = [];
  for (const [scenario, diffs] of verdict.unexpected) {
    out.push(`UNEXPECTED ${scenario}: ${diffs.map((d) => d.signature).join('; ')}`);
    for (const d of diffs) out.push(d.detail.replace(/^/gm, '    ').trimEnd());
  }
  for (const [scenario, sigs] of verdict.vanished) {
    out.push(`NO LONGER DIFFERS ${scenario}: ${sigs.join('; ')} (remove it from ${file})`);
  }
  return `against mdevctl ${version}:\n${out.join('\n')}`;
}

/** The scenario names docs/mdevctl-compat.md lists as differing on purpose. */
export function documentedDeliberate(): string[] {
  const doc = fs.readFileSync(COMPAT_DOC, 'utf8');
  const start = doc.indexOf('## Scenarios that differ on purpose');
  if (start < 0) throw new Error('docs/mdevctl-compat.md lost its list of deliberate differences');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]!).sort();
}
