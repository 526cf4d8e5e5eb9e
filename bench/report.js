// Renders a benchmark result (bench/run.js) as a Markdown table and a hand-written SVG bar chart.
'use strict';

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

function renderMarkdown(r) {
  const out = [];
  const c = r.ceilings;
  out.push(`# Benchmark results${r.quick ? ' (quick sizes)' : ''}`);
  out.push('');
  out.push(`${r.started.slice(0, 16).replace('T', ' ')} UTC · ${r.machine.cores} × ${r.machine.cpu}, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel} · ${r.versions.node}, ${r.versions.nginx}, ${r.versions.curl.split(' ').slice(0, 2).join(' ')}, ${r.versions.wget.split(' ').slice(0, 3).join(' ')}, ${r.versions.aria2c}`);
  out.push('');
  out.push(`Ceilings: loopback (curl → /dev/null) **${fmt(c.loopbackCurlDevNullMBps, 0)} MB/s**, durable disk (dd conv=fdatasync) **${fmt(c.diskDdFdatasyncMBps, 0)} MB/s**, sha256 on one core **${fmt(c.sha256OneCoreMBps, 0)} MB/s**. ${r.runsPerCell} runs per cell, tools alternating; median wall time with p10–p90, median user+sys CPU and peak RSS. Every output's sha256 was checked.`);
  out.push('');
  const titles = {
    A: `A: one ${r.sizes.a / 1048576} MiB file`,
    B: `B: ${r.sizes.bCount} files of 4–64 KiB`,
    C: `C: ${r.sizes.c} files of ${r.sizes.cSize / 1048576} MiB at once`,
  };
  if (r.loadAverage && Object.keys(r.loadAverage).length) {
    out.push(`1-minute load average around each case (other work on this ${r.machine.cores}-core machine): ${Object.entries(r.loadAverage).map(([k, v]) => `${k} ${fmt(v.before, 1)} → ${fmt(v.after, 1)}`).join(', ')}.`);
    out.push('');
  }
  for (const k of ['A', 'B', 'C']) {
    const cs = r.cases[k];
    if (!cs) {
      continue;
    }
    const bytes = k === 'A' ? r.sizes.a : k === 'C' ? r.sizes.c * r.sizes.cSize : undefined;
    out.push(`## ${titles[k]}`);
    out.push('');
    out.push(`| tool | wall (s) | p10–p90 (s) | ${bytes ? 'MB/s | ' : ''}CPU (s) | peak RSS (MiB) | ok |`);
    out.push(`|---|---:|---:|${bytes ? '---:|' : ''}---:|---:|---:|`);
    for (const [tool, s] of Object.entries(cs)) {
      out.push(`| ${tool} | ${fmt(s.wall.median)} | ${fmt(s.wall.p10)}–${fmt(s.wall.p90)} | ${bytes ? fmt(bytes / s.wall.median / 1e6, 0) + ' | ' : ''}${fmt(s.cpu)} | ${fmt(s.rssMiB, 0)} | ${s.runs - s.failures}/${s.runs} |`);
    }
    out.push('');
  }
  if (r.cases.D) {
    out.push(`## D: SIGKILL at 50 % of the ${r.sizes.a / 1048576} MiB file, then the same command again`);
    out.push('');
    out.push('| tool | bytes fetched twice (median) | worst | resume validated (If-Range) | ok |');
    out.push('|---|---:|---:|---|---:|');
    for (const [tool, d] of Object.entries(r.cases.D)) {
      const okRuns = d.runs.filter((x) => x.ok).length;
      out.push(`| ${tool} | ${fmt(d.wastePercentMedian)} % | ${fmt(d.wastePercentMax)} % | ${d.runs.every((x) => x.resumeValidated) ? 'yes' : 'no'} | ${okRuns}/${d.runs.length} |`);
    }
    out.push('');
  }
  const el = r.cases.A && Object.entries(r.cases.A).filter(([, s]) => s.eventLoop);
  if (el && el.length) {
    out.push('## E: event-loop delay of the engine during A');
    out.push('');
    out.push('| run | p50 (ms) | p99 (ms) | max (ms) |');
    out.push('|---|---:|---:|---:|');
    for (const [tool, s] of el) {
      out.push(`| ${tool} | ${fmt(s.eventLoop.p50)} | ${fmt(s.eventLoop.p99)} | ${fmt(s.eventLoop.max)} |`);
    }
    out.push('');
  }
  const split = overheadSplit(r);
  if (split.length) {
    out.push('## Engine or runtime? The CLI against the bare Node floor');
    out.push('');
    out.push('`node floor` is `bench/nodeFloor.js`: the same undici and fs/promises calls with no engine (no journal, validation, resume, hashing or events). CLI ÷ floor is what the engine costs; floor ÷ curl is what Node costs.');
    out.push('');
    out.push('| case | CLI ÷ node floor | node floor ÷ (curl + fsync) | CLI ÷ (curl + fsync) |');
    out.push('|---|---:|---:|---:|');
    for (const x of split) {
      out.push(`| ${x.case} | ${fmt(x.engine)}× | ${fmt(x.runtime)}× | ${fmt(x.total)}× |`);
    }
    out.push('');
  }
  if (r.targets?.length) {
    out.push('## Targets');
    out.push('');
    out.push('| target | measured | met |');
    out.push('|---|---:|---|');
    for (const t of r.targets) {
      out.push(`| ${t.what} | ${t.unit ? fmt(t.value) + ' ' + t.unit : fmt(t.value) + '×'} | ${t.met ? 'yes' : '**no**'} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** Per case: CLI over the bare-runtime floor, the floor over curl + fsync, and their product. */
function overheadSplit(r) {
  const rows = [];
  const pick = { A: ['cli', 'node floor', 'curl + fsync'], B: ['cli --concurrency 16', 'node floor --parallel 16', 'curl --parallel-max 16 + fsync'], C: ['cli --concurrency 16', 'node floor --parallel 16', 'curl --parallel-max 16 + fsync'] };
  for (const [k, [cli, floor, curl]] of Object.entries(pick)) {
    const c = r.cases[k];
    if (!c?.[cli] || !c[floor] || !c[curl]) {
      continue;
    }
    rows.push({ case: k, engine: c[cli].wall.median / c[floor].wall.median, runtime: c[floor].wall.median / c[curl].wall.median, total: c[cli].wall.median / c[curl].wall.median });
  }
  return rows;
}

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Horizontal bars of median wall time per tool, one panel per case, with p10–p90 whiskers. */
function renderSvg(r) {
  const panels = ['A', 'B', 'C'].filter((k) => r.cases[k]);
  const rowH = 22;
  const labelW = 230;
  const barW = 420;
  const width = labelW + barW + 90;
  let y = 40;
  const parts = [];
  parts.push(`<text x="12" y="24" font-size="15" font-weight="bold">Managed Downloads CLI vs curl, wget, aria2c: median wall time (s), lower is better${r.quick ? ' (quick sizes)' : ''}</text>`);
  const titles = { A: `A: one ${r.sizes.a / 1048576} MiB file`, B: `B: ${r.sizes.bCount} files of 4–64 KiB`, C: `C: ${r.sizes.c} × ${r.sizes.cSize / 1048576} MiB at once` };
  for (const k of panels) {
    const rows = Object.entries(r.cases[k]);
    const max = Math.max(...rows.map(([, s]) => (Number.isFinite(s.wall.p90) ? s.wall.p90 : s.wall.median || 0)), 0.001);
    y += 10;
    parts.push(`<text x="12" y="${y + 12}" font-size="13" font-weight="bold">${esc(titles[k])}</text>`);
    y += 20;
    for (const [tool, s] of rows) {
      const ours = tool.startsWith('cli');
      const w = Number.isFinite(s.wall.median) ? (s.wall.median / max) * barW : 0;
      const x0 = labelW;
      parts.push(`<text x="${labelW - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(tool)}</text>`);
      parts.push(`<rect x="${x0}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${ours ? '#2f7ed8' : '#9aa5b1'}"/>`);
      if (Number.isFinite(s.wall.p10) && Number.isFinite(s.wall.p90)) {
        const a = x0 + (s.wall.p10 / max) * barW;
        const b = x0 + (s.wall.p90 / max) * barW;
        parts.push(`<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${y + rowH / 2}" y2="${y + rowH / 2}" stroke="#222" stroke-width="1"/>`);
      }
      parts.push(`<text x="${x0 + w + 6}" y="${y + 15}" font-size="12">${fmt(s.wall.median)}${s.failures ? ' (failed ' + s.failures + ')' : ''}</text>`);
      y += rowH;
    }
  }
  y += 16;
  parts.push(`<text x="12" y="${y}" font-size="11" fill="#555">${esc(`${r.machine.cores} cores, ${r.machine.cpu}; loopback ${fmt(r.ceilings.loopbackCurlDevNullMBps, 0)} MB/s, disk ${fmt(r.ceilings.diskDdFdatasyncMBps, 0)} MB/s (fdatasync); ${r.runsPerCell} runs per cell; whiskers p10–p90`)}</text>`);
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}

module.exports = { renderMarkdown, renderSvg };
