// Where `audit --follow` is in the trail, and whether the trail still holds it. A database
// restored from an older copy rolls the trail back: the seqs after the copy's head are written
// again, by other rows (the `state.rollback` row first). A follower that only remembers a seq
// would skip them; this one remembers the hashes of rows it passed, finds the newest still in
// the trail, and goes on from there.

/** The trail as a follower reads it. */
export interface TrailReader {
  auditHashAt(seq: number): Promise<string | undefined>;
}

const KEPT = 1_000;

export class FollowPosition {
  // Rows passed, oldest first, seqs rising; the first is kept when the rest are trimmed.
  readonly #passed: Array<{ seq: number; hash: string }> = [];

  constructor(start: { seq: number; hash: string }) {
    this.#passed.push(start);
  }

  /** The seq printing goes on after. */
  get seq(): number {
    return (this.#passed.at(-1) as { seq: number }).seq;
  }

  passed(seq: number, hash: string): void {
    if (seq <= this.seq) return;
    this.#passed.push({ seq, hash });
    if (this.#passed.length > KEPT) this.#passed.splice(1, 1);
  }

  /**
   * Undefined while the trail still holds the last row passed; otherwise the seq to go on after:
   * the newest row passed that the trail still holds (0 when none is, the trail replaced whole).
   */
  async rolledBackTo(trail: TrailReader, headSeq: number): Promise<number | undefined> {
    const last = this.#passed.at(-1) as { seq: number; hash: string };
    if (last.seq === 0) return undefined;
    if (headSeq >= last.seq && (await trail.auditHashAt(last.seq)) === last.hash) return undefined;
    // A rollback keeps a prefix: the rows passed that it holds come first. Binary search for the end.
    let low = -1;
    let high = this.#passed.length - 1;
    while (high - low > 1) {
      const mid = (low + high) >> 1;
      const row = this.#passed[mid] as { seq: number; hash: string };
      const held = row.seq === 0 || (row.seq <= headSeq && (await trail.auditHashAt(row.seq)) === row.hash);
      if (held) low = mid;
      else high = mid;
    }
    const kept = low === -1 ? 0 : (this.#passed[low] as { seq: number }).seq;
    this.#passed.splice(low + 1);
    if (this.#passed.length === 0) this.#passed.push({ seq: 0, hash: '' });
    return kept;
  }
}
