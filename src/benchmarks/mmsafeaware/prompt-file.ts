import { MMSAFEAWARE_INSTRUCTION } from "./facts.ts";

/** One well-formed record of `data/prompt.txt`. */
export interface PromptRecord {
  id: number;
  instruction: string;
  /** The sentence without its surrounding double quotes. */
  sentence: string;
  /** 1-based line number of the record's id line, for messages. */
  line: number;
}

/** A record that could not be read; it is quarantined and reported, never silently dropped. */
export interface RecordProblem {
  /** 1-based position of the record in the file. */
  record: number;
  line: number;
  id: number | null;
  message: string;
}

export interface PromptFileParse {
  records: PromptRecord[];
  problems: RecordProblem[];
}

/**
 * Parses `data/prompt.txt` of the official layout: records separated by blank lines, each three lines —
 * the numeric id, the fixed instruction, the sentence in double quotes. Malformed records are returned as
 * problems naming the file, record, line and what to fix; the rest parse normally.
 */
export function parsePromptFile(text: string, fileName = "data/prompt.txt"): PromptFileParse {
  const records: PromptRecord[] = [];
  const problems: RecordProblem[] = [];
  const seen = new Map<number, number>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);

  let recordIndex = 0;
  let i = 0;
  while (i < lines.length) {
    if ((lines[i] ?? "").trim() === "") {
      i++;
      continue;
    }
    const start = i;
    const block: string[] = [];
    while (i < lines.length && (lines[i] ?? "").trim() !== "") block.push((lines[i++] ?? "").trim());
    recordIndex++;
    const line = start + 1;
    const problem = (id: number | null, what: string): void => {
      problems.push({
        record: recordIndex,
        line,
        id,
        message: `${fileName} record ${recordIndex} (line ${line}): ${what}`,
      });
    };

    const [idLine = "", instruction = "", quoted, ...extra] = block;
    const id = /^\d+$/.test(idLine) ? Number(idLine) : null;
    if (id === null || id < 1) {
      problem(null, `the first line must be a positive numeric id, found "${idLine.slice(0, 40)}"`);
      continue;
    }
    if (quoted === undefined) {
      problem(
        id,
        `id ${id} has ${block.length} line(s); expected 3 (id, instruction, "sentence") — missing sentence line`,
      );
      continue;
    }
    if (extra.length > 0) {
      problem(
        id,
        `id ${id} has ${block.length} lines; expected 3 (id, instruction, "sentence") — separate records with a blank line`,
      );
      continue;
    }
    if (instruction !== MMSAFEAWARE_INSTRUCTION) {
      problem(id, `id ${id}: the second line must be the benchmark instruction "${MMSAFEAWARE_INSTRUCTION}"`);
      continue;
    }
    if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) {
      problem(
        id,
        `id ${id}: the sentence line must be enclosed in double quotes (unbalanced quotes: ${quoted.slice(0, 60)})`,
      );
      continue;
    }
    const sentence = quoted.slice(1, -1);
    if (sentence.trim() === "") {
      problem(id, `id ${id}: the sentence is empty`);
      continue;
    }
    const firstLine = seen.get(id);
    if (firstLine !== undefined) {
      problem(id, `duplicate id ${id} (first seen at line ${firstLine}); ids must be unique`);
      continue;
    }
    seen.set(id, line);
    records.push({ id, instruction, sentence, line });
  }
  return { records, problems };
}

/** The text the benchmark shows the model: the instruction line and the quoted sentence, verbatim. */
export function benchmarkPromptText(instruction: string, sentence: string): string {
  return `${instruction}\n"${sentence}"`;
}
