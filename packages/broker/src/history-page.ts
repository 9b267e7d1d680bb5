/**
 * One page of a channel's stored messages for a reader (a client's `history`
 * frame, the server API's history route): every message after `since`, in
 * order, each with the `prev` the history pager gives it, bounded by a count
 * and by the encoded size of the answer, plus where the next page starts.
 */
import { historyEntry } from "@herald/core";
import type { BrokerHistory } from "./broker.js";
import { HISTORY_PAGE, HistoryCursor } from "./history-cursor.js";

/** Most bytes of entries in one page (a page always holds at least one entry). */
export const HISTORY_PAGE_BYTES = 1024 * 1024;

export interface HistoryPage {
  epoch: string;
  /** Encoded entries (historyEntry), oldest first. */
  entries: Buffer[];
  /** The position to pass as `since` for the next page; null when nothing more is stored. */
  next: number | null;
}

/** Reads up to `limit` messages after `since` on `subject` (a channel subject with a history window). */
export async function readHistoryPage(history: BrokerHistory, subject: string, since: number, limit: number): Promise<HistoryPage> {
  const cursor = new HistoryCursor(history, subject, since, Math.ceil(limit / HISTORY_PAGE));
  const entries: Buffer[] = [];
  let bytes = 0;
  let last = since;
  let full = false;
  while (entries.length < limit && !full) {
    // Read no more than the answer can still take.
    const page = await cursor.read(Math.min(HISTORY_PAGE, limit - entries.length));
    for (const m of page) {
      const entry = historyEntry(m.seq, m.prev, m.data);
      if (entries.length > 0 && bytes + entry.length > HISTORY_PAGE_BYTES) {
        full = true;
        break;
      }
      entries.push(entry);
      bytes += entry.length;
      last = m.seq;
    }
    if (page.length === 0 || !cursor.lastPageFull) break;
  }
  // More may be stored after the last entry when the page ended on a limit.
  const more = full || entries.length >= limit || cursor.lastPageFull;
  return { epoch: history.epochOf(subject), entries, next: more ? last : null };
}
