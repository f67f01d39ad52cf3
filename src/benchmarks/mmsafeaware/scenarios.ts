/** Fine-grained labels of an item (domain such as "health", scenario such as "medical_harm"). */
export interface ScenarioLabel {
  domain: string | null;
  scenario: string | null;
}

/**
 * Parses the shipped scenario table (`datasets/mmsafeaware/scenarios.csv`: id,subset,category,domain,scenario).
 * Empty cells mean "not labelled" and stay null: unlabelled items are shown as such, never guessed.
 */
export function parseScenarioTable(csv: string, fileName = "scenarios.csv"): Map<number, ScenarioLabel> {
  const lines = csv
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");
  const header = lines
    .shift()
    ?.split(",")
    .map((h) => h.trim());
  const idCol = header?.indexOf("id") ?? -1;
  const domainCol = header?.indexOf("domain") ?? -1;
  const scenarioCol = header?.indexOf("scenario") ?? -1;
  if (idCol < 0 || domainCol < 0 || scenarioCol < 0) {
    throw new Error(`${fileName}: the header must name the columns id, domain and scenario`);
  }
  const labels = new Map<number, ScenarioLabel>();
  lines.forEach((line, index) => {
    const cells = line.split(",").map((c) => c.trim());
    const id = Number(cells[idCol]);
    if (!Number.isInteger(id) || id < 1)
      throw new Error(`${fileName} line ${index + 2}: id "${cells[idCol]}" is not a positive integer`);
    labels.set(id, { domain: cells[domainCol] || null, scenario: cells[scenarioCol] || null });
  });
  return labels;
}
