/**
 * The latency table of the Kubernetes benchmarks (k8s, dra): each row a
 * figure's p50, p99 and max beside its baseline's p50 / p99, printed once
 * at the end with a line saying what the baselines are.
 */

/** The p-th percentile (nearest rank) of `samples`. */
export function percentile(samples: readonly number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

const ms = (n: number): string => `${n.toFixed(2)} ms`;

export class LatencyTable {
  readonly #rows: string[][] = [];

  row(
    what: string,
    samples: readonly number[],
    baseline: readonly number[] | undefined,
    goal: string,
  ): void {
    const p99 = percentile(samples, 99);
    this.#rows.push([
      what,
      ms(percentile(samples, 50)),
      ms(p99),
      ms(Math.max(...samples)),
      baseline === undefined
        ? ''
        : `${ms(percentile(baseline, 50))} / ${ms(percentile(baseline, 99))}`,
      baseline === undefined ? '' : `${(p99 / percentile(baseline, 99)).toFixed(1)}x`,
      goal,
    ]);
  }

  print(baselines: string): void {
    const head = ['', 'p50', 'p99', 'max', 'baseline p50 / p99', 'p99 ratio', 'goal'];
    const widths = head.map((h, i) => Math.max(h.length, ...this.#rows.map((r) => r[i]!.length)));
    const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(line(head));
    for (const r of this.#rows) console.log(line(r));
    console.log(`\nbaselines: ${baselines}`);
  }
}
