import packageJson from "../package.json" with { type: "json" };

/** mmsafe's version, recorded in every report. */
export const MMSAFE_VERSION: string = packageJson.version;
