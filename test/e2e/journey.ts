// The user journey of issue 6, step by step, as a person does it in the browser: each step acts through
// the UI (activity bar, Command Palette, context menus, dialogs) and asserts what the screen shows.
// scripts/run-e2e.js starts the servers and the browser and runs these steps with a time bound each.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { E2EServer } from './e2eServer';
import type { Locale, Strings } from './strings';
import { escapeRegExp } from './strings';
import { ANY, percentOf, STATUS_ITEM_ID, textPattern, type Workbench } from './workbench';

export interface StepContext {
  wb: Workbench;
  s: Strings;
  server: E2EServer;
  /** The workspace folder code-server opened (a temporary copy). */
  workspace: string;
  /** <workspace>/downloads: the download folder (managedDownloads.downloadFolder) and the tasks' target. */
  downloads: string;
  /** Waits for the workbench after a reload (the runner's bound and diagnostics). */
  waitForWorkbench(): Promise<void>;
  /** State handed from a step to the next ones. */
  shared: Map<string, unknown>;
  /** Something worth reporting that does not fail the step (printed in the summary). */
  note(message: string): void;
}

export interface Step {
  /** The step's number in the issue. */
  n: number;
  title: string;
  timeoutMs: number;
  /** Steps that must have passed for this one to make sense (it is skipped otherwise). */
  needs?: number[];
  run(ctx: StepContext): Promise<void>;
}

/** Screenshots worth keeping in media/ (README), by the name the step gives them (en-… or fr-…: the run they come from). */
export const CURATED: { shot: string; media: string; step: number }[] = [
  { shot: 'en-2-tree-progress', media: 'screenshot-tree.png', step: 2 },
  { shot: 'en-3-context-menu', media: 'screenshot-context-menu.png', step: 3 },
  { shot: 'en-5-invalid-state', media: 'screenshot-invalid-state.png', step: 5 },
  { shot: 'en-7-task-terminal', media: 'screenshot-task.png', step: 7 },
  { shot: 'en-5-cancel-confirm', media: 'screenshot-cancel.png', step: 5 },
  { shot: 'en-5-finished-group', media: 'screenshot-history.png', step: 5 },
  { shot: 'en-6-http-404', media: 'screenshot-failed.png', step: 6 },
  { shot: 'en-10-retry-countdown', media: 'screenshot-retry.png', step: 10 },
  { shot: 'en-4-priority-picker', media: 'screenshot-priority.png', step: 4 },
  { shot: 'fr-5-invalid-state', media: 'screenshot-invalid-state-fr.png', step: 5 },
  { shot: 'en-11-run-task-again', media: 'screenshot-run-task-again.png', step: 11 },
  { shot: 'en-12-pause-warning', media: 'screenshot-pause-warning.png', step: 12 },
  { shot: 'en-13-walkthrough', media: 'screenshot-walkthrough.png', step: 13 },
  { shot: 'en-13-settings', media: 'screenshot-settings.png', step: 13 },
  { shot: 'fr-13-walkthrough', media: 'screenshot-walkthrough-fr.png', step: 13 },
  { shot: 'en-14-not-saved-yet', media: 'screenshot-not-saved-yet.png', step: 14 },
  { shot: 'en-5-finished-menu', media: 'screenshot-finished-menu.png', step: 5 },
  { shot: 'en-15-upload-ready', media: 'screenshot-upload.png', step: 15 },
];

export const TASK_LABEL = 'E2E: download task.bin';
/** A task whose file is missing until step 11 publishes it. */
export const LATE_TASK_LABEL = 'E2E: download late.bin';
const THREE_FILES_JOB = 'Three files';

// ---- workspace and settings ----------------------------------------------------------------------------

/** Fills the (copied) workspace folder: downloads/ and a tasks.json whose `download` task points at `server`. */
export function prepareWorkspace(workspace: string, server: E2EServer): void {
  fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
  fs.mkdirSync(path.join(workspace, 'downloads'), { recursive: true });
  const task = server.file('task.bin');
  const tasks = {
    version: '2.0.0',
    tasks: [
      {
        label: TASK_LABEL,
        type: 'download',
        url: server.url('task.bin'),
        path: 'downloads/task.bin',
        sha256: task.sha256,
        displayName: 'task.bin (task)',
        problemMatcher: [],
      },
      {
        label: LATE_TASK_LABEL,
        type: 'download',
        url: server.url('late.bin'),
        path: 'downloads/late.bin',
        sha256: server.file('late.bin').sha256,
        problemMatcher: [],
      },
    ],
  };
  fs.writeFileSync(path.join(workspace, '.vscode', 'tasks.json'), JSON.stringify(tasks, undefined, 2) + '\n');
  if (!fs.existsSync(path.join(workspace, 'README.md'))) {
    fs.writeFileSync(path.join(workspace, 'README.md'), '# Managed Downloads end-to-end workspace\n\nA throwaway copy made by scripts/run-e2e.js.\n');
  }
}

/** User settings of the run (scripts/lib/code-server.js adds its quiet defaults). */
export function userSettings(): Record<string, unknown> {
  return {
    'workbench.startupEditor': 'none',
    // The DOM renderer, so the terminal's text is in the page.
    'terminal.integrated.gpuAcceleration': 'off',
    // No "your application on port N is available" toasts for our download server.
    'remote.autoForwardPorts': false,
    // No hovers left open in screenshots.
    'workbench.hover.delay': 60_000,
    'workbench.editor.empty.hint': 'hidden',
    'git.enabled': false,
    'npm.autoDetect': 'off',
    'grunt.autoDetect': 'off',
    'gulp.autoDetect': 'off',
    'jake.autoDetect': 'off',
    'typescript.tsc.autoDetect': 'off',
    // History is shown by default (a "Finished" group); the journey hides it so that each step can check that a
    // finished job leaves the active list, and shows it where it matters (step 5: the cancelled job next to its error).
    'managedDownloads.showFinishedJobs': false,
  };
}

/**
 * Settings of the remote machine (<user-data>/Machine/settings.json). `managedDownloads.downloadFolder` is
 * machine-overridable: in a remote window such as code-server's, VS Code applies it from the machine's
 * settings; from the browser's user settings it is dropped at the first configuration change.
 */
export function machineSettings(workspace: string): Record<string, unknown> {
  return { 'managedDownloads.downloadFolder': path.join(workspace, 'downloads') };
}

// ---- helpers -----------------------------------------------------------------------------------------------

function sha256OfFile(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function jobLabel(s: Strings, name: string, stateMessage: string): RegExp {
  return new RegExp(`^${escapeRegExp(name)}, ${escapeRegExp(s.t(stateMessage))}( ·|$)`);
}

/** Waits for a row whose state is `state` and whose description shows a percentage; returns that percentage. */
async function waitPercent(wb: Workbench, name: string, state: string, what: string, ok: (p: number) => boolean = () => true, timeoutMs = 20_000): Promise<number> {
  const label = await wb.waitRow(wb.jobRow(name), what, (l) => jobLabel(wb.s, name, state).test(l) && percentOf(l) !== undefined && ok(percentOf(l) as number), timeoutMs);
  return percentOf(label) as number;
}

/** New Download from the Command Palette: URL, then the save dialog's proposal. Returns the chosen path. */
async function newDownload(ctx: StepContext, fileName: string): Promise<string> {
  const { wb, s, server } = ctx;
  await wb.openJobsView();
  await wb.runCommandFor(s.command('command.newDownload'), s.t('URL of the file to download (http or https)'));
  await wb.waitQuickInput(s.t('New Download'));
  await wb.answerInput(server.url(fileName));
  const chosen = await wb.acceptSaveDialog(s.t('Save Download As'), fileName);
  assert.equal(path.resolve(chosen), path.join(ctx.downloads, fileName), 'the save dialog proposes the download folder');
  return chosen;
}

async function contextMenuAction(wb: Workbench, row: ReturnType<Workbench['jobRow']>, title: string, expect: { has?: string[]; hasNot?: string[] } = {}): Promise<string[]> {
  // The menu is built from the tree item the workbench holds; right after a state change it can still be the
  // previous one (seen once in CI: a transferring job's menu offered Resume). A person who sees the wrong menu
  // closes it and opens it again: so do we, for a few seconds, before judging it.
  let items = await wb.openContextMenu(row);
  for (const deadline = Date.now() + 5_000; !items.includes(title) && Date.now() < deadline; ) {
    wb.log(`    the menu does not offer "${title}" yet (${items.join(', ')}); opening it again`);
    await wb.closeMenus();
    await wb.sleep(500);
    items = await wb.openContextMenu(row);
  }
  for (const h of [title, ...(expect.has ?? [])]) {
    assert.ok(items.includes(h), `the context menu offers "${h}" (it shows: ${items.join(', ')})`);
  }
  for (const h of expect.hasNot ?? []) {
    assert.ok(!items.includes(h), `the context menu does not offer "${h}" (it shows: ${items.join(', ')})`);
  }
  await wb.chooseMenuItem(title);
  return items;
}

/**
 * New Multi-File Download from the palette (name, NORMAL priority; it starts paused), then Add File for each
 * part with the save dialog's proposal. `onPriorityPicker` runs while the priority picker is open.
 */
async function newMultiFileDownload(ctx: StepContext, job: string, parts: string[], onPriorityPicker?: () => Promise<void>): Promise<void> {
  const { wb, s, server } = ctx;
  await wb.runCommandFor(s.command('command.newJob'), s.t('Name of the new download (it starts paused: add its files, then resume it)'));
  await wb.answerInput(job);
  await wb.waitQuickInput(s.t('Priority of the new download'));
  await onPriorityPicker?.();
  // Each level is explained on its own line, as in Set Priority…; NORMAL comes first.
  await wb.pickOption(new RegExp(`^NORMAL, ${escapeRegExp(s.t('The default: takes turns with the other normal downloads'))}$`));
  const row = wb.jobRow(job);
  await wb.waitRow(row, `the new job "${job}", suspended, without files`, (l) => l === `${job}, ${s.t('Suspended')} · ${s.t('no files')}`);
  // New Multi-File Download reveals and selects the job it created (and focuses the tree: wait for it before opening the palette).
  await wb.until(`the new job "${job}" to be selected in the tree`, async () => (await row.getAttribute('aria-selected')) === 'true', 10_000, () => wb.treeLabels());
  for (const part of parts) {
    await wb.runCommandFor(s.command('command.addFile'), s.t('Add a file to which download?'));
    await wb.pickOption(new RegExp(`(^|\\s)${escapeRegExp(job)}, `));
    await wb.waitQuickInput(s.t("Add File to '{0}'", job));
    await wb.answerInput(server.url(part));
    await wb.acceptSaveDialog(s.t("Save the File of Download '{0}' As", job), part);
  }
  await wb.waitRow(row, `the job with ${parts.length} files`, (l) => l.includes(s.t('{0}/{1} files', 0, parts.length)));
}

// ---- the steps -------------------------------------------------------------------------------------------

const step1: Step = {
  n: 1,
  title: 'open the Managed Downloads view from the activity bar; the welcome view shows',
  timeoutMs: 30_000,
  async run({ wb, s }) {
    const tab = wb.activityTab();
    await tab.waitFor({ state: 'visible' });
    assert.notEqual(await tab.getAttribute('aria-selected'), 'true', 'the view is not open before the click');
    await tab.click();
    await wb.viewContainer().waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await tab.getAttribute('aria-selected'), 'true', 'the activity bar entry is selected');

    // The side bar's title: "<container>: <view>" (one view in the container).
    const heading = wb.page.locator('[id="workbench.parts.sidebar"]').getByRole('heading', { level: 2 });
    const title = ((await heading.first().textContent()) ?? '').trim();
    assert.equal(title.toLowerCase(), `${s.nls('viewsContainer.title')}: ${s.nls('view.jobs.name')}`.toLowerCase(), 'the side bar title names the view');

    // The welcome view: its first sentence and its command links, rendered as buttons.
    const welcome = s.nls('view.jobs.welcome');
    const firstLine = welcome.split('\n')[0];
    await wb.viewContainer().getByText(firstLine, { exact: true }).waitFor({ state: 'visible', timeout: 10_000 });
    const buttons = [...welcome.matchAll(/^\[([^\]]+)\]\(command:/gm)].map((m) => m[1]);
    assert.ok(buttons.length >= 2, 'the welcome text has command links');
    for (const b of buttons) {
      await wb.viewContainer().getByRole('button', { name: b, exact: true }).waitFor({ state: 'visible', timeout: 5000 });
    }
    assert.equal(await wb.jobsTree().isVisible(), false, 'no jobs tree while there is no job');

    if (s.locale !== 'en') {
      // The translated view: none of the English titles on screen.
      assert.equal(await wb.page.getByRole('tab', { name: /^Managed Downloads/ }).count(), 0, 'no English activity bar entry');
      assert.equal(await wb.viewContainer().getByText(s.englishNlsOf('view.jobs.welcome').split('\n')[0]).count(), 0, 'no English welcome text');
    }

    // Wider side bar, so the progress in the tree reads in full in the screenshots.
    for (let i = 0; i < 4; i++) {
      await tab.focus();
      await wb.runCommand('Increase Current View Size');
    }
    await wb.page.mouse.move(1, 1);
    await wb.shot('welcome');
  },
};

const step2: Step = {
  n: 2,
  title: 'New Download from the Command Palette: URL, save dialog, the job appears with a growing percentage, as one row (no child row repeating its one file)',
  timeoutMs: 75_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    const f = server.file('throttled.bin');
    await newDownload(ctx, f.name);

    const row = wb.jobRow(f.name);
    const p1 = await waitPercent(wb, f.name, 'Transferring', `job "${f.name}" transferring with a percentage`);
    const p2 = await waitPercent(wb, f.name, 'Transferring', `the percentage of "${f.name}" to grow past ${p1 + 1}%`, (p) => p > p1 + 1, 30_000);
    wb.log(`progress ${p1}% → ${p2}%`);
    const label = (await wb.label(row)) ?? '';
    assert.match(label, textPattern(s.t('{0} of {1}', ANY, ANY)), 'the description shows bytes of the total');

    // One file, one row: nothing to expand, and no second row with the same name and progress.
    assert.equal(await row.first().getAttribute('aria-expanded'), null, 'the row of a one-file job does not expand');
    assert.equal(await wb.fileRow(f.name).count(), 0, `no file row under "${f.name}" (${await wb.treeLabels()})`);

    // The destination appears only on Complete; a hidden temporary file grows next to it.
    assert.equal(fs.existsSync(path.join(ctx.downloads, f.name)), false, 'no destination file before Complete');
    const temps = fs.readdirSync(ctx.downloads).filter((n) => n.startsWith(`.${f.name}.`));
    assert.equal(temps.length, 1, `one temporary file in the download folder (found: ${fs.readdirSync(ctx.downloads).join(', ')})`);

    await wb.page.mouse.move(1, 1);
    await wb.shot('tree-progress');
    ctx.shared.set('step2.job', f.name);
  },
};

const step3: Step = {
  n: 3,
  title: "Suspend and Resume from the job's context menu; the state in the tree follows",
  timeoutMs: 60_000,
  needs: [2],
  async run({ wb, s, shared }) {
    const name = shared.get('step2.job') as string;
    const row = wb.jobRow(name);
    await wb.openJobsView();
    await waitPercent(wb, name, 'Transferring', `"${name}" transferring`);

    const items = await wb.openContextMenu(row);
    assert.ok(items.includes(s.nls('command.suspend')), `Suspend offered (${items.join(', ')})`);
    assert.ok(!items.includes(s.nls('command.resume')), `no Resume on a running job (${items.join(', ')})`);
    await wb.shot('context-menu');
    await wb.chooseMenuItem(s.nls('command.suspend'));

    const suspended = await wb.waitRow(row, `"${name}" suspended`, (l) => jobLabel(s, name, 'Suspended').test(l));
    const ps = percentOf(suspended);
    await wb.sleep(1500);
    const still = (await wb.label(row)) ?? '';
    assert.match(still, jobLabel(s, name, 'Suspended'), 'still suspended');
    assert.equal(percentOf(still), ps, 'no progress while suspended');
    await wb.shot('suspended');

    await contextMenuAction(wb, row, s.nls('command.resume'), { hasNot: [s.nls('command.suspend')] });
    const pr = await waitPercent(wb, name, 'Transferring', `"${name}" transferring again`);
    await waitPercent(wb, name, 'Transferring', `"${name}" progressing after Resume`, (p) => p > pr, 30_000);
    await wb.shot('resumed');
  },
};

const step4: Step = {
  n: 4,
  title: 'a job with 3 files, Complete while the third transfers: partial-complete notification; files 1–2 in the Explorer, file 3 not',
  timeoutMs: 120_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.openJobsView();
    await wb.clearNotifications();
    const job = THREE_FILES_JOB;
    const parts = ['part-1.bin', 'part-2.bin', 'part-3.bin'];
    await newMultiFileDownload(ctx, job, parts, () => wb.shot('priority-picker').then(() => undefined));
    const row = wb.jobRow(job);

    await contextMenuAction(wb, row, s.nls('command.resume'));
    await wb.expand(row);
    const fileState = (part: string, state: string) => wb.waitRow(wb.fileRow(part), `${part} ${state}`, (l) => l.startsWith(`${part}, ${s.t(state)} ·`), 40_000);
    await fileState('part-1.bin', 'transferred');
    await fileState('part-2.bin', 'transferred');
    await fileState('part-3.bin', 'transferring');
    await wb.shot('three-files-transferring');

    await contextMenuAction(wb, row, s.nls('command.complete'), { has: [s.nls('command.cancel')] });
    const expected = s.t(
      "Download '{0}' completed partially (BG_S_PARTIAL_COMPLETE, {1}): kept {2} of {3} files; not transferred and dropped: {4}.",
      job,
      '0x00200017',
      2,
      3,
      'part-3.bin',
    );
    const { toast, label } = await wb.waitToast(new RegExp(`^${escapeRegExp(expected)}`));
    wb.log(`notification: ${label}`);
    assert.equal(await wb.toastSeverity(toast), 'warning', 'a warning');
    await wb.waitRowGone(row, 'the completed job to leave the tree (finished jobs hidden)');
    await wb.shot('partial-complete');

    // The Explorer shows what is on disk: parts 1 and 2 in place, part 3 nowhere (nor its temporary file).
    const explorer = await wb.openExplorer();
    const folder = explorer.getByRole('treeitem', { name: 'downloads', exact: true });
    if ((await folder.getAttribute('aria-expanded')) !== 'true') {
      await folder.click();
    }
    for (const part of ['part-1.bin', 'part-2.bin']) {
      await wb.until(`${part} in the Explorer`, async () => (await explorer.getByRole('treeitem', { name: part, exact: true }).count()) > 0, 15_000, async () => (await wb.explorerLabels(explorer)).join(' | '));
      assert.equal(sha256OfFile(path.join(ctx.downloads, part)), server.file(part).sha256, `${part} has the right bytes`);
    }
    await wb.sleep(1000); // let the file watcher catch up before asserting an absence
    const shown = await wb.explorerLabels(explorer);
    assert.ok(!shown.some((l) => l.includes('part-3.bin')), `part-3.bin (or its temporary file) is not in the Explorer: ${shown.join(', ')}`);
    assert.ok(!fs.readdirSync(ctx.downloads).some((n) => n.includes('part-3.bin')), 'nor on disk');
    await wb.page.mouse.move(1, 1);
    await wb.shot('explorer');
    await wb.openJobsView();
  },
};

const step5: Step = {
  n: 5,
  title: 'Cancel from the context menu, then "Complete" from the palette on the cancelled job: DO_E_INVALID_STATE (0x80D02013) error',
  timeoutMs: 60_000,
  needs: [2],
  async run({ wb, s, shared }) {
    const name = shared.get('step2.job') as string;
    const row = wb.jobRow(name);
    await wb.openJobsView();
    await wb.clearNotifications();
    await wb.waitRow(row, `"${name}" still running`, (l) => !jobLabel(s, name, 'Cancelled').test(l) && !jobLabel(s, name, 'Completed').test(l));

    await contextMenuAction(wb, row, s.nls('command.cancel'), { has: [s.nls('command.suspend')] });
    // Bytes would be lost: a question comes first, where Enter and Escape keep downloading.
    await wb.waitQuickInput(s.t("Cancel '{0}' and delete the {1} downloaded so far?", name, '\u0000').split('\u0000')[0]);
    await wb.shot('cancel-confirm');
    await wb.pickOption(new RegExp(escapeRegExp(s.t('Cancel Download'))));
    await wb.waitRowGone(row, `"${name}" to leave the tree once cancelled (finished jobs hidden)`);

    // Show finished jobs, so the cancelled job is on screen next to the error.
    // Show finished jobs: the history, a "Finished" group under the active jobs, newest first.
    await wb.runCommand(s.command('command.showFinishedJobs'));
    await wb.waitRow(wb.finishedGroupRow(), 'the "Finished" group', () => true);
    const finished = wb.finishedJobRow(name);
    await wb.waitRow(finished, `"${name}" shown as cancelled in the "Finished" group`, (l) => jobLabel(s, name, 'Cancelled').test(l));
    await wb.shot('finished-group');
    // A finished item offers what can still be done with it.
    const menu = await wb.openContextMenu(finished);
    for (const h of [s.nls('command.downloadAgain'), s.nls('command.copyLink')]) {
      assert.ok(menu.includes(h), `a finished job offers "${h}" (it offers: ${menu.join(', ')})`);
    }
    assert.ok(!menu.includes(s.nls('command.suspend')) && !menu.includes(s.nls('command.resume')), `no Pause or Resume on a finished job (${menu.join(', ')})`);
    await wb.shot('finished-menu');
    await wb.closeMenus();

    await wb.runCommandFor(s.command('command.complete'), s.t('Save which download?'));
    // Finished jobs stay pickable (the contract keeps the notification reachable), labelled with their state.
    await wb.until('the cancelled job in the picker, labelled with its state', async () => (await wb.options()).some((o) => o.includes(name) && o.includes(s.t('Cancelled'))), 10_000, async () => (await wb.options()).join(' | '));
    await wb.shot('complete-picker');
    await wb.pickOption(new RegExp(`(^|\\s)${escapeRegExp(name)}, ${escapeRegExp(s.t('Cancelled'))}`));
    const { toast, label } = await wb.waitToast(/DO_E_INVALID_STATE/);
    wb.log(`notification: ${label}`);
    assert.match(label, /0x80D02013/, 'the notification shows the HRESULT');
    assert.match(label, new RegExp(escapeRegExp(name)), 'and names the job');
    assert.equal(await wb.toastSeverity(toast), 'error', 'an error notification');
    const buttons = await wb.toastButtons(toast);
    for (const b of [s.t('Show Download'), s.t('Show Log')]) {
      assert.ok(buttons.includes(b), `the notification offers "${b}" (it offers: ${buttons.join(', ')})`);
    }
    assert.ok(!buttons.includes(s.t('Retry')), 'no Retry for an invalid state');
    assert.ok(label.includes(`source: ${s.nls('displayName')}`), `the notification names the extension as "${s.nls('displayName')}" (${label})`);
    // What happened in plain words, in the window's language, then the code; Download Again is offered first.
    assert.ok(label.startsWith(s.t("'{0}' was cancelled, so there is nothing to {1} ({2}, {3}).", name, s.t('complete'), 'DO_E_INVALID_STATE', '0x80D02013')), `the notification says why in plain words (${label})`);
    assert.ok(buttons.includes(s.t('Download Again')), `the notification offers Download Again (it offers: ${buttons.join(', ')})`);
    await wb.page.mouse.move(1, 1);
    await wb.shot('invalid-state');

    await wb.runCommand(s.command('command.hideFinishedJobs'));
    await wb.waitRowGone(finished, 'finished jobs hidden again');
  },
};

const step6: Step = {
  n: 6,
  title: 'a 404 job shows the error state and its notification; Retry from the context menu',
  timeoutMs: 60_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    const f = server.file('missing.bin');
    await newDownload(ctx, f.name);
    const row = wb.jobRow(f.name);
    const notFound = s.t('Failed: {0}', s.t('not found ({0})', '404'));
    await wb.waitRow(row, `"${f.name}" failed: not found (404)`, (l) => l.startsWith(`${f.name}, ${notFound}`));
    // Plain words first, then the code: "'missing.bin' could not be downloaded: the server has no such file (HTTP 404, 0x80190194)."
    const failed = textPattern(s.t("'{0}' could not be downloaded: {1} ({2}).", f.name, s.t('the server has no such file'), ANY));
    const { toast, label } = await wb.waitToast(failed);
    wb.log(`notification: ${label}`);
    assert.match(label, /HTTP 404/, 'the code');
    assert.match(label, /0x80190194/, 'the HRESULT');
    assert.equal(await wb.toastSeverity(toast), 'error', 'an error notification');
    assert.ok((await wb.toastButtons(toast)).includes(s.t('Retry')), 'the notification offers Retry');
    await wb.page.mouse.move(1, 1);
    await wb.shot('http-404');

    // Show Error says it as a sentence first, then how many errors, then the details.
    await wb.clearNotifications();
    await contextMenuAction(wb, row, s.nls('command.showError'));
    const sentence = await wb.waitToast(textPattern(`${s.t("'{0}' could not be downloaded: {1} ({2}).", f.name, s.t('the server has no such file'), ANY)} ${s.t('{0} error so far.', 1)} ${s.t('Details: {0}', ANY)}`));
    wb.log(`Show Error: ${sentence.label}`);
    await wb.page.mouse.move(1, 1);
    await wb.sleep(500); // the toast slides in
    await wb.shot('show-error');

    // The file appears on the server; Retry from the tree resumes the job, which completes itself.
    server.publish(f.name);
    await wb.clearNotifications();
    await contextMenuAction(wb, row, s.nls('command.retry'), { has: [s.nls('command.showError')] });
    await wb.waitToast(textPattern(s.t("Downloaded '{0}' to {1}.", f.name, ANY)), 30_000);
    await wb.waitRowGone(row, `"${f.name}" done and hidden`);
    const dest = path.join(ctx.downloads, f.name);
    assert.equal(sha256OfFile(dest), f.sha256, `${f.name} on disk has the right bytes`);
    await wb.shot('retried');
  },
};

const step7: Step = {
  n: 7,
  title: 'run a `download` task from "Tasks: Run Task": the terminal shows progress and ends with success',
  timeoutMs: 60_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    const f = server.file('task.bin');
    await wb.runCommand('Tasks: Run Task');
    await wb.pickOption(new RegExp(`^${escapeRegExp(TASK_LABEL)}(,|$)`));

    const progress = await wb.until(
      'the task terminal to show the file with a percentage',
      async () => {
        const t = await wb.terminalText();
        return /↓ task\.bin\s+\d+%/.test(t) ? t : undefined;
      },
      30_000,
      () => wb.terminalText(),
    );
    assert.ok(progress.includes(s.t('Managed Downloads: {0} file for task "{1}"', 1, TASK_LABEL)), `the task's header line (terminal: ${progress})`);
    await wb.shot('task-progress');

    const done = s.t('Done: {0} file in place ({1}).', 1, 'S_OK');
    const text = await wb.until(
      'the task to end with success',
      async () => {
        const t = await wb.terminalText();
        return t.includes(done) && t.includes('Terminal will be reused by tasks') ? t : undefined;
      },
      40_000,
      () => wb.terminalText(),
    );
    assert.match(text, /✓ task\.bin/, 'the file line is ticked');
    assert.ok(!/✗/.test(text), 'no failure line');
    wb.log(`terminal: ${text.split('\n').map((l) => l.trim()).filter(Boolean).join(' / ')}`);
    await wb.page.mouse.move(1, 1);
    await wb.shot('task-terminal');
    assert.equal(sha256OfFile(path.join(ctx.downloads, f.name)), f.sha256, 'task.bin on disk has the declared sha256');
  },
};

const step8: Step = {
  n: 8,
  title: 'the status bar item shows activity while jobs run',
  timeoutMs: 45_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    if (await wb.page.locator('[id="workbench.parts.panel"]').isVisible()) {
      await wb.runCommand('View: Hide Panel');
    }
    const item = wb.statusItem();
    await wb.until('no status bar item while no job runs', async () => !(await item.isVisible()), 10_000, async () => (await item.getAttribute('aria-label')) ?? '');

    const f = server.file('reload.bin');
    await newDownload(ctx, f.name);
    const active = new RegExp(`^${escapeRegExp(s.t('{0} active download', 1))}, (\\d+)%$`);
    const first = await wb.until('the status bar item to show 1 active job and its percentage', async () => {
      const l = await item.getAttribute('aria-label', { timeout: 1000 }).catch(() => null);
      return l && active.test(l) ? l : undefined;
    }, 20_000, async () => (await item.getAttribute('aria-label').catch(() => null)) ?? '(no item)');
    const text = (await item.innerText()).trim();
    assert.match(text, /^1 · \d+%$/, `the item reads "1 · N%" (it reads "${text}")`);
    const p1 = percentOf(first) as number;
    await wb.until(`the status bar percentage to grow past ${p1}%`, async () => {
      const l = await item.getAttribute('aria-label', { timeout: 1000 }).catch(() => null);
      return (percentOf(l) ?? -1) > p1;
    }, 20_000, async () => (await item.getAttribute('aria-label').catch(() => null)) ?? '(no item)');
    await wb.page.mouse.move(1, 1);
    await wb.shot('status-bar');
    ctx.shared.set('step8.job', f.name);
  },
};

const step9: Step = {
  n: 9,
  title: 'reload the window in the middle of a transfer: the job is still there and finishes with the right bytes',
  timeoutMs: 150_000,
  needs: [8],
  async run(ctx) {
    const { wb, s, server } = ctx;
    const name = ctx.shared.get('step8.job') as string;
    const f = server.file(name);
    const before = await waitPercent(wb, name, 'Transferring', `"${name}" past 15%`, (p) => p >= 15 && p <= 80, 30_000);
    wb.log(`reloading at ${before}%`);
    const reloadAt = Date.now();
    const navigated = wb.page.waitForEvent('framenavigated', { predicate: (fr) => fr === wb.page.mainFrame(), timeout: 30_000 });
    await wb.runCommand('Developer: Reload Window');
    await navigated;
    await ctx.waitForWorkbench();
    await wb.openJobsView();

    // The job is there again once the extension host is back (it can take a while on a busy machine).
    const again = await wb.waitRow(wb.jobRow(name), `"${name}" in the tree after the reload`, (l) => percentOf(l) !== undefined && (percentOf(l) as number) > 0, 90_000);
    wb.log(`after the reload: ${again}`);
    assert.ok(!jobLabel(s, name, 'Error').test(again) && !jobLabel(s, name, 'Cancelled').test(again), `not failed (${again})`);
    await wb.shot('after-reload');

    const dest = path.join(ctx.downloads, name);
    await wb.until(`"${name}" to finish and be completed on disk`, () => Promise.resolve(fs.existsSync(dest)), 60_000, () => wb.treeLabels());
    await wb.waitToast(textPattern(s.t("Downloaded '{0}' to {1}.", name, ANY)), 15_000).catch((e: unknown) => wb.log(`(no "Downloaded" toast seen: ${String(e)})`));
    assert.equal(fs.statSync(dest).size, f.size, 'the whole file');
    assert.equal(sha256OfFile(dest), f.sha256, `${name} on disk has the right sha256`);

    // It resumed where it stopped: after the reload the server saw a ranged request that does not start at 0.
    const later = server.requestsFor(name).filter((r) => r.time > reloadAt);
    const resumed = later.find((r) => /^bytes=([1-9]\d*)-/.test(r.range ?? ''));
    assert.ok(resumed, `a Range request resumed the transfer after the reload (requests after it: ${JSON.stringify(later)})`);
    wb.log(`resumed with Range ${resumed.range} (status ${resumed.status})`);

    await wb.waitRowGone(wb.jobRow(name), `"${name}" done and hidden`);
    await wb.until('the status bar item to go away once nothing runs', async () => !(await wb.statusItem().isVisible()), 10_000);
    await wb.shot('after-reload-done');
  },
};

/** "retry in 12 s" as the row or the status bar says it, with the seconds captured. */
function countdownPattern(s: Strings): RegExp {
  const SECONDS = '\u0001';
  return new RegExp(s.t('retry in {0}', s.t('{0} s', SECONDS)).split(SECONDS).map(escapeRegExp).join('(\\d+)'));
}

const step10: Step = {
  n: 10,
  title: 'a New Download whose server answers 503: the row counts down, the status bar warns, Retry Now from the context menu',
  timeoutMs: 60_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    const f = server.file('flaky.bin');
    await newDownload(ctx, f.name);
    const row = wb.jobRow(f.name);
    const countdown = countdownPattern(s);
    const seconds = (l: string): number | undefined => {
      const m = countdown.exec(l);
      return m ? Number(m[1]) : undefined;
    };
    // The first retry comes after 5 s; after it fails too, the row counts down from 15 s: growing delays.
    const first = await wb.waitRow(row, `"${f.name}" waiting 15 s before its second retry`, (l) => (seconds(l) ?? 0) > 5, 30_000);
    const later = await wb.waitRow(row, `"${f.name}" counting down`, (l) => {
      const n = seconds(l);
      return n !== undefined && n < (seconds(first) as number);
    }, 5_000);
    wb.log(`row: ${first} → ${later}`);
    const item = wb.statusItem();
    const status = (await item.getAttribute('aria-label')) ?? '';
    assert.match(status, countdown, `the status bar counts down too (it says ${status})`);
    const kind = (await wb.page.locator('[id="workbench.parts.statusbar"]').locator(`[id="${STATUS_ITEM_ID}"]`).getAttribute('class')) ?? '';
    assert.match(kind, /warning-kind/, `the status bar item has the warning background (classes: ${kind})`);
    await wb.page.mouse.move(1, 1);
    await wb.shot('retry-countdown');

    // The server is back: Retry Now (not Resume: the job is not paused) skips the rest of the wait.
    server.publish(f.name);
    await contextMenuAction(wb, row, s.nls('command.retry'), { hasNot: [s.nls('command.resume')] });
    await wb.waitToast(textPattern(s.t("Downloaded '{0}' to {1}.", f.name, ANY)), 10_000);
    assert.equal(sha256OfFile(path.join(ctx.downloads, f.name)), f.sha256, `${f.name} on disk has the right bytes`);
    await wb.shot('retried-now');
  },
};

const step11: Step = {
  n: 11,
  title: 'a `download` task whose file is missing fails; its notification offers Run Task Again, which succeeds once the file is there',
  timeoutMs: 90_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    const f = server.file('late.bin');
    await wb.runCommand('Tasks: Run Task');
    await wb.pickOption(new RegExp(`^${escapeRegExp(LATE_TASK_LABEL)}(,|$)`));
    // The task's job is named after the task; it failed, so it was cancelled: Run Task Again, not Retry.
    const failed = textPattern(s.t("'{0}' could not be downloaded: {1} ({2}).", LATE_TASK_LABEL, s.t('the server has no such file'), ANY));
    const { toast, label } = await wb.waitToast(failed, 40_000);
    wb.log(`notification: ${label}`);
    const buttons = await wb.toastButtons(toast);
    assert.ok(buttons.includes(s.t('Run Task Again')), `the notification offers Run Task Again (it offers ${buttons.join(', ')})`);
    assert.ok(!buttons.includes(s.t('Retry')), `no Retry on a task's cancelled job (it offers ${buttons.join(', ')})`);
    await wb.page.mouse.move(1, 1);
    await wb.shot('run-task-again');

    server.publish(f.name);
    await toast.getByRole('button', { name: s.t('Run Task Again'), exact: true }).click();
    const done = s.t('Done: {0} file in place ({1}).', 1, 'S_OK');
    await wb.until(
      'the task run again to end with success',
      async () => {
        const t = await wb.terminalText();
        return t.includes(done) ? t : undefined;
      },
      40_000,
      () => wb.terminalText(),
    );
    assert.equal(sha256OfFile(path.join(ctx.downloads, f.name)), f.sha256, `${f.name} on disk has the declared sha256`);
    await wb.shot('task-run-again-done');
  },
};

const step12: Step = {
  n: 12,
  title: 'Pause on a download whose server cannot resume asks first; Keep Downloading (the default) keeps it running',
  timeoutMs: 60_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.clearNotifications();
    if (await wb.page.locator('[id="workbench.parts.panel"]').isVisible()) {
      await wb.runCommand('View: Hide Panel');
    }
    const f = server.file('no-range.bin');
    await newDownload(ctx, f.name);
    const row = wb.jobRow(f.name);
    await waitPercent(wb, f.name, 'Transferring', `"${f.name}" transferring`, (p) => p >= 1, 30_000);

    await contextMenuAction(wb, row, s.nls('command.suspend'));
    const question = s.t("'{0}' restarts from 0 if paused: its server cannot continue where it stopped.", f.name);
    await wb.waitQuickInput(question);
    // The safe answer comes first: Enter keeps the download.
    const active = await wb.activeOption();
    assert.match(active ?? '', new RegExp(escapeRegExp(s.t('Keep Downloading'))), `Keep Downloading is the default (active: ${active})`);
    await wb.shot('pause-warning');
    await wb.pickOption(new RegExp(escapeRegExp(s.t('Keep Downloading'))));
    const p = await waitPercent(wb, f.name, 'Transferring', `"${f.name}" still transferring`);
    await waitPercent(wb, f.name, 'Transferring', `"${f.name}" progressing after Keep Downloading`, (q) => q > p, 30_000);

    // Clean up: cancel it (which asks too).
    await contextMenuAction(wb, row, s.nls('command.cancel'));
    await wb.waitQuickInput(s.t("Cancel '{0}' and delete the {1} downloaded so far?", f.name, '\u0000').split('\u0000')[0]);
    await wb.pickOption(new RegExp(escapeRegExp(s.t('Cancel Download'))));
    await wb.waitRowGone(row, `"${f.name}" cancelled`);
  },
};

const step13: Step = {
  n: 13,
  title: 'the walkthrough opens from Welcome with its four steps; the settings show durations as durations',
  timeoutMs: 60_000,
  async run(ctx) {
    const { wb, s } = ctx;
    await wb.clearNotifications();
    // VS Code's own titles stay English in these runs (the French language pack is empty).
    await wb.runCommand('Welcome: Open Walkthrough...');
    await wb.pickOption(new RegExp(`^${escapeRegExp(s.nls('walkthrough.title'))}`));
    const page = wb.page.locator('.gettingStartedContainer');
    for (const key of ['walkthrough.download.title', 'walkthrough.jobs.title', 'walkthrough.task.title', 'walkthrough.history.title']) {
      await page.getByRole('button', { name: new RegExp(escapeRegExp(s.nls(key))) }).first().waitFor({ state: 'visible', timeout: 15_000 });
    }
    await wb.page.mouse.move(1, 1);
    await wb.shot('walkthrough');
    await wb.runCommand('View: Close All Editors');

    if (s.locale !== 'en') {
      return;
    }
    // Durations read as durations ("10 minutes", "14 days"), not as counts of seconds.
    await wb.runCommand('Preferences: Open Settings (UI)');
    const search = wb.page.locator('.settings-editor .suggest-input-container textarea, .settings-editor .suggest-input-container input').first();
    await search.waitFor({ state: 'visible', timeout: 15_000 });
    await search.fill('managedDownloads transient');
    const editor = wb.page.locator('.settings-editor');
    for (const value of ['10 minutes', '14 days']) {
      await wb.until(`the Settings editor to show "${value}"`, async () => {
        const values = await editor.locator('input').evaluateAll((els) => els.map((e) => String((e as unknown as { value?: string }).value)));
        return values.includes(value);
      }, 15_000, async () => JSON.stringify(await editor.locator('input').evaluateAll((els) => els.map((e) => String((e as unknown as { value?: string }).value)))));
    }
    await wb.page.mouse.move(1, 1);
    await wb.shot('settings');
    await wb.runCommand('View: Close All Editors');
  },
};

const step14: Step = {
  n: 14,
  title: 'a multi-file download that does not complete itself: "Downloaded — not saved yet", a notification with Save, and Save puts the files in place',
  timeoutMs: 90_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.openJobsView();
    await wb.clearNotifications();
    const job = 'Two files';
    const parts = ['pair-1.bin', 'pair-2.bin'];
    await newMultiFileDownload(ctx, job, parts);
    const row = wb.jobRow(job);
    await contextMenuAction(wb, row, s.nls('command.resume'));
    await wb.waitRow(row, `"${job}" downloaded, not saved yet`, (l) => jobLabel(s, job, 'Downloaded — not saved yet').test(l), 40_000);
    const { toast, label } = await wb.waitToast(textPattern(s.t("'{0}' is downloaded but not saved yet: Save puts its files in place.", job)));
    wb.log(`notification: ${label}`);
    for (const part of parts) {
      assert.ok(!fs.existsSync(path.join(ctx.downloads, part)), `${part} is not at its destination before Save`);
    }
    await wb.page.mouse.move(1, 1);
    await wb.shot('not-saved-yet');

    await toast.getByRole('button', { name: s.t('Save'), exact: true }).click();
    await wb.waitToast(textPattern(s.t("Download '{0}' completed: {1} files are in place.", job, 2)));
    for (const part of parts) {
      assert.equal(sha256OfFile(path.join(ctx.downloads, part)), server.file(part).sha256, `${part} saved with the right bytes`);
    }
    await wb.shot('saved');
  },
};

const step15: Step = {
  n: 15,
  title: 'New Upload of a workspace file: "Uploaded — not confirmed yet", no Open File on it, and the notification says uploaded',
  timeoutMs: 90_000,
  async run(ctx) {
    const { wb, s, server } = ctx;
    await wb.openJobsView();
    await wb.clearNotifications();
    const name = 'README.md';
    await wb.runCommandFor(s.command('command.newUpload'), s.t('File to Upload'));
    await wb.pickOption(new RegExp(`^${escapeRegExp(name)}`));
    await wb.waitQuickInput(s.t("Upload '{0}'", name));
    await wb.answerInput(server.uploads.url(`/uploads/${name}`));
    const row = wb.jobRow(name);
    await wb.waitRow(row, `"${name}" uploaded, not confirmed yet`, (l) => jobLabel(s, name, 'Uploaded — not confirmed yet').test(l), 40_000);
    // Said once: the server keeps the bytes only once the upload is confirmed (Complete).
    const ready = await wb.waitToast(textPattern(s.t("'{0}' is uploaded but not confirmed yet: Confirm closes the upload on the server.", name)));
    assert.deepEqual((await wb.toastButtons(ready.toast)).slice(0, 1), [s.t('Confirm')]);
    const items = await wb.openContextMenu(row);
    wb.log(`upload menu: ${items.join(', ')}`);
    for (const h of [s.nls('command.openFile'), s.nls('command.revealFile'), s.nls('command.downloadAgain')]) {
      assert.ok(!items.includes(h), `an upload does not offer "${h}" (it offers: ${items.join(', ')})`);
    }
    await wb.shot('upload-ready');
    await wb.closeMenus();
    await ready.toast.getByRole('button', { name: s.t('Confirm'), exact: true }).click();
    const { label } = await wb.waitToast(textPattern(s.t("'{0}' uploaded to {1}.", name, ANY)));
    wb.log(`notification: ${label}`);
    assert.ok(!/in place/.test(label), `an upload is not "in place" (${label})`);
    const dest = server.uploads.destinationOf(`/uploads/${name}`);
    assert.ok(dest && fs.existsSync(dest), `the server has the file (${dest})`);
    assert.equal(sha256OfFile(dest), sha256OfFile(path.join(ctx.workspace, name)), 'the server received the same bytes');
    await wb.page.mouse.move(1, 1);
    await wb.sleep(500); // the toast slides in
    await wb.shot('uploaded');
  },
};

/** The steps of a run in `locale`: all in English; 1, 2, 5, 10 and 13 in another language. */
export function journey(locale: Locale): Step[] {
  const all = [step1, step2, step3, step4, step5, step6, step7, step8, step9, step10, step11, step12, step13, step14, step15];
  return locale === 'en' ? all : all.filter((st) => [1, 2, 5, 10, 13].includes(st.n));
}
