/**
 * What every benchmark declares about itself: where its official data lives and how it is verified, the
 * columns its results are reported in, how each item's prompt is built, the scorers it can be scored with,
 * the numbers its authors published, and the description the README and the report show.
 *
 * A benchmark lives in `src/benchmarks/<name>/` and exports one {@link BenchmarkDefinition}. Definitions are
 * pure data and pure functions: nothing here reads files, the environment or the network (importers that
 * read a folder live beside the definition and are imported by the dataset commands, not by the core).
 */

/**
 * What a model should do with an item. `yes` / `no` answer a question such as "is this safe?" (MMSafeAware);
 * `refuse` / `comply` are behaviours: a benign request should be complied with (MOSSBench, VLGuard's
 * safe-safe subset), a harmful one refused (MOSSBench's contrast set, VLGuard's unsafe subsets).
 */
export const EXPECTED_BEHAVIOURS = ["yes", "no", "refuse", "comply"] as const;
export type ExpectedBehaviour = (typeof EXPECTED_BEHAVIOURS)[number];

/** How a column's rate reads. */
export type ColumnMeasure =
  /** % of items answered as expected (MMSafeAware's accuracy). */
  | "accuracy"
  /** % of items the model refused (MOSSBench's headline, lower is better on benign items). */
  | "refusal-rate"
  /** % of harmful items the model complied with: no refusal found (VLGuard's ASR, lower is better). */
  | "attack-success-rate";

/** One column of a benchmark's results table: a group of items and the rate reported over them. */
export interface ColumnDefinition {
  /** Stable key: stored on items and verdicts, used in report.json (`typical`, `type1`, `unsafes`). */
  key: string;
  /** The column's name as its authors print it ("Typical", "Exaggerated Risk", "ASR (unsafes)"). */
  label: string;
  /** One sentence: which items, and what the rate means. */
  description: string;
  measure: ColumnMeasure;
  /** True where a lower rate is the better result (refusal rate on benign items, attack success). */
  lowerIsBetter: boolean;
  /** Items the official data has in this column (e.g. 100 per MOSSBench type), null where it varies. */
  officialCount: number | null;
}

/** A summary over several columns, as the authors define it (MMSafeAware's Total, MOSSBench's ALL). */
export interface AggregateDefinition {
  key: string;
  label: string;
  description: string;
  /** Unweighted mean of these columns' rates (MMSafeAware's Total), or pooled over their items. */
  of: readonly string[];
  combine: "mean-of-columns" | "pooled";
}

/** A way to turn a model's answer into a score. */
export interface ScorerDefinition {
  /** Stable id, chosen with `--scorer` and stored with the run (`paper`, `judge`, `refusal-keywords`). */
  id: string;
  label: string;
  /** True only for the protocol the authors' published numbers were computed with. */
  official: boolean;
  /** Why and how, in one or two sentences, shown in the report beside the numbers it produced. */
  description: string;
  /** A judge model is needed (the run must name one with `--judge`). */
  needsJudge: boolean;
}

/** One published result: rates by column (and aggregate) key, as the authors printed them. */
export interface PublishedRow {
  model: string;
  /** Rates in %, keyed by column or aggregate key; a column the authors did not report is absent. */
  values: Readonly<Record<string, number>>;
  /** Where the row is printed ("README leaderboard", "Table 2"). */
  source: string;
  /** A known problem with the row (a typo in the published table), shown next to it. */
  note?: string;
}

/** The official source of a benchmark's data, pinned. */
export interface BenchmarkSource {
  /** `owner/name` of the authors' repository. */
  repository: string;
  /** The pinned commit the manifest was taken at (40 hex digits). */
  commit: string;
  /** The license as the authors state it, quoted or summarised with where it is stated. */
  license: string;
  /** The paper: authors, title, venue. */
  citation: string;
  /** Where the images come from, if not the repository (a gated archive the user downloads). */
  images: string;
}

/** Everything a benchmark declares. */
export interface BenchmarkDefinition {
  /** The name used in the run input, the CLI and storage (`mmsafeaware`, `mossbench`, `vlguard`). */
  name: string;
  /** As the authors spell it (`MMSafeAware`, `MOSSBench`, `VLGuard`). */
  title: string;
  /** What it measures, in a paragraph, for the README and the report. */
  summary: string;
  source: BenchmarkSource;
  /** The columns, in the order the authors print them. */
  columns: readonly ColumnDefinition[];
  aggregates: readonly AggregateDefinition[];
  scorers: readonly ScorerDefinition[];
  /** The scorer used when the run names none (the official one when it needs no judge). */
  defaultScorer: string;
  published: readonly PublishedRow[];
}

/** A judge model's reading of one answer. */
export interface JudgeReading {
  /** The parsed score (MOSSBench: 1 = refusal, 0 = compliance); null when nothing could be parsed. */
  score: number | null;
  /** Which path of the official parse rule produced it (`regex`, `fallback`), or `none`. */
  rule: string;
}

/** A benchmark's official judge protocol, reproduced exactly. */
export interface JudgeProtocol {
  /** Stable id stored with each judge verdict (`mossbench-eval`). */
  id: string;
  /** The official prompt template, verbatim, with its placeholders. */
  template: string;
  /** Where the template is quoted from (`repo@commit path`). */
  templateSource: string;
  /** sha256 (hex) of the template's UTF-8 bytes: stored with every reading, to say which prompt produced it. */
  promptSha256: string;
  /** The judge prompt for one item: the template filled in exactly as the official code fills it. */
  prompt(fields: Readonly<Record<string, string>>): string;
  /** The official code attaches the item's image to the judge request. */
  attachImage: boolean;
  /** The official parse rule, as a function of the judge's raw text. */
  parse(text: string): JudgeReading;
  /** One sentence describing the parse rule (for the report). */
  parseRule: string;
}

/**
 * One evaluable item of a benchmark as its importer reads it from the official layout (or a user's own
 * dataset): what is sent, what is expected, and which column it counts in.
 */
export interface BenchmarkRecord {
  /** Unique within the benchmark, stable across imports (`12`, `contrast:12`, `Ads_306373:unsafe`). */
  id: string;
  /** The key of the column it counts in (one of the definition's columns). */
  column: string;
  expected: ExpectedBehaviour;
  /** The user text sent to the model, verbatim (the benchmark's prompt builder may wrap it per strategy). */
  text: string;
  /** The image's path relative to the dataset root, with `/` separators. */
  imagePath: string;
  /** Detected from the file's bytes, never from its extension (two MOSSBench `.png` files hold WebP). */
  mediaType: "image/jpeg" | "image/png" | "image/webp" | "image/gif";
  imageBytes: number;
  /** Breakdown fields (harm category, flags), shown as breakdowns in the report. */
  groups: Readonly<Record<string, string | number | boolean | null>>;
}

/** A record of the data that cannot be evaluated, with the reason (never dropped silently). */
export interface SkippedBenchmarkRecord {
  /** The record's id as the file gives it, null where even that is unreadable. */
  id: string | null;
  /** A short machine-readable reason (`missing_image`, `malformed_record`, `unreadable_image`). */
  reason: string;
  /** What is wrong and what to fix, naming the file and field. */
  detail: string;
}
