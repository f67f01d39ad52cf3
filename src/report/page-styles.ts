/**
 * The stylesheets shared by the generated pages. {@link BASE_PAGE_STYLES} (report.html and
 * reports/index.html): colours for light and dark schemes, the page frame and headings. Each page appends
 * its own rules, then {@link PAGE_FOOTER_STYLES}. {@link COMPARE_PAGE_STYLES}: the comparison pages'.
 */
export const BASE_PAGE_STYLES = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#59636e;--line:#d0d7de;--soft:#f3f5f7;
--right:#1a7f37;--wrong:#cf222e;--error:#9a6700;--accent:#0969da;--tag:#eef1f4}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;
--soft:#161b22;--right:#3fb950;--wrong:#f85149;--error:#d29922;--accent:#4493f8;--tag:#21262d}}
*{box-sizing:border-box}[hidden]{display:none!important}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:84rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid var(--line);padding-bottom:.25rem}`;

/** The footer's rule, last in each page's stylesheet. */
export const PAGE_FOOTER_STYLES = `footer{padding:2rem 1rem;font-size:.8rem;color:var(--muted)}
`;

/**
 * The rules both comparison pages (MMSafeAware's and a plug-in benchmark's) share: colours for light and
 * dark schemes, definition lists, labels, tables and the significance mark. Each page appends its own frame,
 * headings and table rules.
 */
export const COMPARE_PAGE_STYLES = `
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #57606a; --line: #d0d7de;
  --head: #f6f8fa; --good: #1a7f37; --bad: #cf222e; --mark: #fff8c5; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #8d96a0; --line: #30363d; --head: #161b22;
    --good: #3fb950; --bad: #f85149; --mark: #3b2e00; }
}
* { box-sizing: border-box; }
p, dl { margin: .4rem 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .75rem; }
dt { font-weight: 600; }
.muted, caption, .note { color: var(--muted); }
.label { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
caption { text-align: left; caption-side: bottom; padding-top: .4rem; font-size: .9rem; }
th { background: var(--head); font-weight: 600; }
td.significant { background: var(--mark); }`;
