// How the journey drives VS Code's web workbench: the Command Palette, quick inputs (including the simple
// save dialog), the Managed Downloads tree and its context menu, notifications, the status bar, the
// Explorer and the terminal. Elements are found by role and accessible name (aria-label), by the ids VS
// Code gives parts, view containers and status bar entries, never by position.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { escapeRegExp, type Strings } from './strings';

/** The part of a DOM element the page functions below read (the DOM lib is not in this project's types). */
type DomElement = { getAttribute(name: string): string | null };

/** Thrown by waits once the step's time is up, so a step that timed out stops acting on the page. */
export class StepAborted extends Error {}

export const VIEW_CONTAINER_ID = 'workbench.view.extension.managedDownloads';
export const VIEW_ID = 'managedDownloads.jobs';
export const STATUS_ITEM_ID = 'dojobs.managed-downloads.managedDownloads.status';

/** `[id="…"]`: VS Code's ids contain dots, which `#id` would read as classes. */
export function byId(id: string): string {
  return `[id="${id}"]`;
}

export function percentOf(label: string | null | undefined): number | undefined {
  const m = /(\d+)\s?%/.exec(label ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * A RegExp matching the text of an l10n template with its placeholders filled by anything: pass the
 * template already formatted with `ANY` where any text may stand.
 */
export const ANY = '\u0000';
export function textPattern(formatted: string, flags = ''): RegExp {
  return new RegExp(formatted.split(ANY).map(escapeRegExp).join('.+?'), flags);
}

/**
 * Runs in the page before VS Code (page.addInitScript): keeps the last few hundred UI events that matter
 * when a step fails (quick input shown/hidden and its title, focus moves, keys, context menus), so a failure
 * report says what happened on screen. Read back with Workbench.trace().
 */
export function uiTraceScript(): void {
  type TraceWindow = { __e2eTrace?: string[] };
  const w = globalThis as unknown as TraceWindow & { document: { addEventListener(t: string, f: (e: unknown) => void, c: boolean): void } };
  const trace: string[] = (w.__e2eTrace = []);
  const t0 = Date.now();
  const push = (m: string): void => {
    trace.push(`${((Date.now() - t0) / 1000).toFixed(2)} ${m}`);
    if (trace.length > 400) {
      trace.splice(0, trace.length - 400);
    }
  };
  type El = { className?: unknown; getAttribute?(n: string): string | null; closest?(s: string): El | null; style?: { display?: string }; querySelector?(s: string): El | null; textContent?: string | null };
  // An SVG element's className is an SVGAnimatedString, not a string.
  const classText = (c: unknown): string => (typeof c === 'string' ? c : c === undefined || c === null ? '' : Object.prototype.toString.call(c));
  const describe = (el: El | null | undefined): string => {
    if (!el || !el.getAttribute) {
      return el ? Object.prototype.toString.call(el) : String(el);
    }
    const label = el.getAttribute('aria-label') ?? '';
    const role = el.getAttribute('role') ?? '';
    return `${classText(el.className).slice(0, 40)}${role ? ` role=${role}` : ''}${label ? ` "${label.slice(0, 60)}"` : ''}`;
  };
  w.document.addEventListener('focusin', (e) => push(`focus ${describe((e as { target?: El }).target)}`), true);
  w.document.addEventListener('keydown', (e) => {
    const k = (e as { key?: string }).key ?? '';
    if (['Enter', 'Escape', 'F1', 'ArrowDown', 'ArrowRight'].includes(k)) {
      push(`key ${k}`);
    }
  }, true);
  w.document.addEventListener('contextmenu', (e) => push(`contextmenu on ${describe((e as { target?: El }).target)}`), true);
  const Observer = (globalThis as unknown as { MutationObserver: new (cb: (records: { target: El }[]) => void) => { observe(n: unknown, o: unknown): void } }).MutationObserver;
  let lastDisplay = '';
  new Observer((records) => {
    for (const r of records) {
      if (classText(r.target.className).includes('quick-input-widget')) {
        const d = r.target.style?.display ?? '';
        if (d !== lastDisplay) {
          lastDisplay = d;
          const title = r.target.querySelector?.('.quick-input-title')?.textContent ?? '';
          push(`quick input ${d === 'none' ? 'hidden' : `shown "${title.trim().slice(0, 60)}"`}`);
        }
      }
    }
  }).observe(w.document, { attributes: true, attributeFilter: ['style'], subtree: true });
}

export interface Shot {
  name: string;
  file: string;
}

export class Workbench {
  /** Set by the runner when the step's time is up. */
  aborted = false;
  /** The step running now (screenshots are named `<locale>-<step>-<name>.png`). */
  step = 0;
  /** Reports something that does not fail the step (the runner prints it in the summary). */
  note: (message: string) => void = (m) => this.log(`note: ${m}`);
  readonly shots: Shot[] = [];

  constructor(
    readonly page: Page,
    readonly s: Strings,
    private readonly shotsDir: string,
    private readonly shotPrefix: string,
    readonly log: (msg: string) => void,
  ) {}

  // ---- waiting ---------------------------------------------------------------------------------

  /**
   * Polls `probe` until it returns something other than undefined/false, or fails after `timeoutMs` with
   * what it was waiting for and the last value `describe` gave.
   */
  async until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000, describe?: () => Promise<string>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      if (this.aborted) {
        throw new StepAborted(`aborted while waiting for ${what}`);
      }
      try {
        const v = await probe();
        if (v !== undefined && v !== false) {
          return v;
        }
        lastError = undefined;
      } catch (e) {
        if (e instanceof StepAborted) {
          throw e;
        }
        lastError = e;
      }
      if (Date.now() > deadline) {
        let seen = '';
        if (describe) {
          seen = await describe().catch((e: unknown) => `(could not read: ${String(e)})`);
        }
        const err = lastError instanceof Error ? `; last error: ${lastError.message.split('\n')[0]}` : '';
        throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${seen ? `; on screen: ${seen}` : ''}${err}`);
      }
      await this.page.waitForTimeout(200);
    }
  }

  /** The UI events uiTraceScript() recorded (empty if it is not installed). */
  async trace(): Promise<string[]> {
    return this.page.evaluate(() => ((globalThis as unknown as { __e2eTrace?: string[] }).__e2eTrace ?? []).slice());
  }

  async sleep(ms: number): Promise<void> {
    await this.page.waitForTimeout(ms);
  }

  // ---- load --------------------------------------------------------------------------------------

  /** The workbench is there and the extension's contributions (its activity bar entry) are registered. */
  async waitForWorkbench(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await this.page.locator('.monaco-workbench').waitFor({ state: 'attached', timeout: Math.max(1000, deadline - Date.now()) });
    await this.activityTab().waitFor({ state: 'visible', timeout: Math.max(1000, deadline - Date.now()) });
  }

  // ---- screenshots -------------------------------------------------------------------------------

  async shot(name: string): Promise<string> {
    fs.mkdirSync(this.shotsDir, { recursive: true });
    const file = path.join(this.shotsDir, `${this.shotPrefix}${this.step}-${name}.png`);
    await this.page.screenshot({ path: file });
    this.shots.push({ name, file });
    return file;
  }

  // ---- quick input and Command Palette ------------------------------------------------------------

  get quickInput(): Locator {
    return this.page.locator('.quick-input-widget');
  }

  get quickInputBox(): Locator {
    return this.quickInput.getByRole('textbox');
  }

  async quickInputOpen(): Promise<boolean> {
    return this.quickInput.isVisible();
  }

  async closeQuickInput(): Promise<void> {
    for (let i = 0; i < 3 && (await this.quickInputOpen()); i++) {
      await this.page.keyboard.press('Escape');
      await this.sleep(150);
    }
  }

  /** The title, prompt/message and input label of the open quick input (hidden widgets read as empty). */
  async quickInputText(): Promise<string> {
    if (!(await this.quickInputOpen())) {
      return '(no quick input)';
    }
    const parts = await this.quickInput
      .locator('.quick-input-title, .quick-input-message, .quick-input-description')
      .evaluateAll((els) => els.map((e) => String((e as { innerText?: string }).innerText ?? '')));
    const label = (await this.quickInputBox.getAttribute('aria-label').catch(() => null)) ?? '';
    return [...parts, label].join(' ').replace(/\s+/g, ' ').trim();
  }

  /** Options of the open quick pick, by accessible name. */
  async options(): Promise<string[]> {
    return this.quickInput.getByRole('option').evaluateAll((els: DomElement[]) => els.map((e) => String(e.getAttribute('aria-label') ?? '')));
  }

  /** The accessible name of the quick pick entry the keyboard is on (what Enter would accept). */
  async activeOption(): Promise<string | undefined> {
    const id = await this.quickInputBox.getAttribute('aria-activedescendant');
    if (!id) {
      return undefined;
    }
    return (await this.page.locator(byId(id)).getAttribute('aria-label', { timeout: 2000 }).catch(() => null)) ?? undefined;
  }

  /**
   * Moves the keyboard to the option whose name matches and accepts it with Enter. The keyboard rather than
   * a click: a click's trailing mouse events can land on the next quick input, which opens in the same place.
   */
  async acceptOption(name: RegExp, what: string): Promise<string> {
    const options = this.quickInput.getByRole('option');
    await this.until(`${what} among the options`, async () => (await options.evaluateAll((els: DomElement[]) => els.map((e) => String(e.getAttribute('aria-label'))))).some((l) => name.test(l)), 15_000, async () => (await this.options()).join(' | '));
    for (let i = 0; i < 30; i++) {
      const active = await this.activeOption();
      if (active !== undefined && name.test(active)) {
        // The list re-renders as the filter applies: make sure the entry under the keyboard stays the same.
        await this.sleep(150);
        const still = await this.activeOption();
        if (still !== active) {
          continue;
        }
        await this.page.keyboard.press('Enter');
        return active;
      }
      await this.page.keyboard.press('ArrowDown');
      await this.sleep(50);
    }
    throw new Error(`could not move to ${what} with the keyboard; options: ${(await this.options()).join(' | ')}`);
  }

  /**
   * Runs a command the way a user does: F1, type its title, accept it. Fails when the palette does not
   * list an entry with exactly this title (the check that titles are what they should be, e.g. in French).
   */
  async runCommand(title: string): Promise<void> {
    await this.closeQuickInput();
    await this.page.keyboard.press('F1');
    await this.quickInputBox.waitFor({ state: 'visible', timeout: 10_000 });
    await this.quickInputBox.fill(`>${title}`);
    // "Title", or "Title, recently used", "Title, similar commands", "Title, Ctrl+…".
    await this.acceptOption(new RegExp(`^${escapeRegExp(title)}(,|$)`), `"${title}" in the Command Palette`);
  }

  /**
   * Runs a command that opens a quick input and waits for it to show `text`. Once (seen once in a dozen
   * runs on the loaded 2-core machine) the quick pick a command opened right after the palette closed never
   * showed; the command is then run once more, and the retry is reported as a note with the UI trace, not
   * hidden.
   */
  async runCommandFor(title: string, text: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.runCommand(title);
      try {
        await this.waitQuickInput(text, attempt === 1 ? 8000 : 15_000);
        return;
      } catch (e) {
        if (attempt >= 2 || this.aborted) {
          throw e;
        }
        const trace = (await this.trace().catch(() => [])).slice(-12).join(' | ');
        this.note(`"${title}" did not show "${text}" (UI trace: ${trace}); ran it again`);
      }
    }
  }

  /** Waits for a quick input (input box, quick pick or save dialog) showing `text` (its title or prompt). */
  async waitQuickInput(text: string, timeoutMs = 15_000): Promise<void> {
    await this.until(`a quick input showing "${text}"`, async () => (await this.quickInputOpen()) && (await this.quickInputText()).includes(text), timeoutMs, () => this.quickInputText());
  }

  async answerInput(value: string): Promise<void> {
    await this.quickInputBox.fill(value);
    await this.page.keyboard.press('Enter');
  }

  /** Picks the quick pick option whose accessible name matches. */
  async pickOption(name: RegExp): Promise<string> {
    return this.acceptOption(name, `an option matching ${name}`);
  }

  /**
   * The save dialog of code-server (VS Code's simple file dialog: a quick input with the path): waits for
   * its title and for the proposed path to end with `fileName`, then accepts it with Enter. Returns the path.
   */
  async acceptSaveDialog(title: string, fileName: string): Promise<string> {
    await this.waitQuickInput(title);
    const value = await this.until(
      `the save dialog to propose …/${fileName}`,
      async () => {
        const v = await this.quickInputBox.inputValue();
        return v.endsWith(`/${fileName}`) ? v : undefined;
      },
      15_000,
      () => this.quickInputBox.inputValue(),
    );
    await this.page.keyboard.press('Enter');
    await this.until('the save dialog to close', async () => !(await this.quickInputOpen()), 15_000, () => this.quickInputText());
    return value;
  }

  // ---- the Managed Downloads view -----------------------------------------------------------------

  activityTab(): Locator {
    return this.page.getByRole('tab', { name: new RegExp(`^${escapeRegExp(this.s.nls('viewsContainer.title'))}`) });
  }

  viewContainer(): Locator {
    return this.page.locator(byId(VIEW_CONTAINER_ID));
  }

  jobsTree(): Locator {
    return this.viewContainer().getByRole('tree', { name: this.s.nls('view.jobs.name'), exact: true });
  }

  /** Opens the view container from the activity bar (a click on the tab of an open container would close it). */
  async openJobsView(): Promise<void> {
    const tab = this.activityTab();
    const container = this.viewContainer();
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await container.isVisible()) {
        return;
      }
      if ((await tab.getAttribute('aria-selected')) === 'true') {
        // Selected but not shown yet (the workbench is still restoring it after a reload): a click now would
        // toggle the side bar closed. Give it a moment; only a side bar that stays closed gets the click.
        const shown = await container.waitFor({ state: 'visible', timeout: 3_000 }).then(
          () => true,
          () => false,
        );
        if (shown) {
          return;
        }
      }
      await tab.click();
      if (await container.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false)) {
        return;
      }
    }
    await container.waitFor({ state: 'visible', timeout: 10_000 });
  }

  jobRow(displayName: string): Locator {
    return this.jobsTree().getByRole('treeitem', { name: new RegExp(`^${escapeRegExp(displayName)}, `), level: 1 });
  }

  /** The "Finished" group (history), a root row. */
  finishedGroupRow(): Locator {
    return this.jobsTree().getByRole('treeitem', { name: new RegExp(`^${escapeRegExp(this.s.t('Finished'))}, `), level: 1 });
  }

  /** A finished job's row, inside the "Finished" group. */
  finishedJobRow(displayName: string): Locator {
    return this.jobsTree().getByRole('treeitem', { name: new RegExp(`^${escapeRegExp(displayName)}, `), level: 2 });
  }

  fileRow(fileName: string): Locator {
    return this.jobsTree().getByRole('treeitem', { name: new RegExp(`^${escapeRegExp(fileName)}, `), level: 2 });
  }

  /** Accessible names of every row of the jobs tree (jobs and files), for diagnostics. */
  async treeLabels(): Promise<string> {
    const tree = this.jobsTree();
    if (!(await tree.isVisible())) {
      return '(jobs tree not shown)';
    }
    const labels = await tree.getByRole('treeitem').evaluateAll((els: DomElement[]) => els.map((e) => `[${String(e.getAttribute('aria-level'))}] ${String(e.getAttribute('aria-label'))}`));
    return labels.length ? labels.join(' | ') : '(no rows)';
  }

  async label(row: Locator): Promise<string | undefined> {
    if ((await row.count()) === 0) {
      return undefined;
    }
    return (await row.first().getAttribute('aria-label', { timeout: 2000 })) ?? undefined;
  }

  /** Waits until the row exists and its accessible name satisfies `ok`; returns that name. */
  async waitRow(row: Locator, what: string, ok: (label: string) => boolean, timeoutMs = 20_000): Promise<string> {
    return this.until(
      what,
      async () => {
        const l = await this.label(row);
        return l !== undefined && ok(l) ? l : undefined;
      },
      timeoutMs,
      () => this.treeLabels(),
    );
  }

  async waitRowGone(row: Locator, what: string, timeoutMs = 15_000): Promise<void> {
    await this.until(what, async () => (await row.count()) === 0, timeoutMs, () => this.treeLabels());
  }

  async expand(row: Locator): Promise<void> {
    if ((await row.first().getAttribute('aria-expanded')) !== 'true') {
      await row.first().click();
      await this.page.keyboard.press('ArrowRight');
    }
    await this.until('the row to expand', async () => (await row.first().getAttribute('aria-expanded')) === 'true', 10_000);
  }

  // ---- context menus ----------------------------------------------------------------------------------

  contextMenu(): Locator {
    return this.page.getByRole('menu').filter({ has: this.page.getByRole('menuitem') });
  }

  /** Right-clicks the row and returns the titles of its context menu entries. */
  async openContextMenu(row: Locator): Promise<string[]> {
    await row.first().click({ button: 'right' });
    const menu = this.contextMenu().last();
    await menu.waitFor({ state: 'visible', timeout: 10_000 });
    // A person reads the menu before choosing; VS Code ignores a click in the first ~150 ms after it opens.
    await this.sleep(400);
    const items = await menu.getByRole('menuitem').evaluateAll((els) => els.map((e) => String((e as { innerText?: string }).innerText ?? '').trim()));
    return items.filter((t) => t !== '');
  }

  async chooseMenuItem(title: string): Promise<void> {
    await this.contextMenu().last().getByRole('menuitem', { name: title, exact: true }).click();
  }

  async closeMenus(): Promise<void> {
    if (await this.contextMenu().count()) {
      await this.page.keyboard.press('Escape');
    }
  }

  // ---- notifications ------------------------------------------------------------------------------

  /** Notification toasts: each is a `dialog` whose accessible name is "<message>, source: <extension>, notification…". */
  toasts(): Locator {
    return this.page.locator('.notifications-toasts').getByRole('dialog');
  }

  async toastLabels(): Promise<string> {
    const labels = await this.toasts().evaluateAll((els: DomElement[]) => els.map((e) => String(e.getAttribute('aria-label'))));
    return labels.length ? labels.join(' | ') : '(no notification)';
  }

  /** Waits for a toast whose accessible name matches; returns it and its name. */
  async waitToast(name: RegExp, timeoutMs = 20_000): Promise<{ toast: Locator; label: string }> {
    const toast = this.page.locator('.notifications-toasts').getByRole('dialog', { name });
    const label = await this.until(
      `a notification matching ${name}`,
      async () => ((await toast.count()) > 0 ? ((await toast.first().getAttribute('aria-label')) ?? undefined) : undefined),
      timeoutMs,
      () => this.toastLabels(),
    );
    return { toast: toast.first(), label };
  }

  /** The severity icon the toast shows. */
  async toastSeverity(toast: Locator): Promise<'error' | 'warning' | 'info' | 'unknown'> {
    for (const s of ['error', 'warning', 'info'] as const) {
      if ((await toast.locator(`.codicon-${s}`).count()) > 0) {
        return s;
      }
    }
    return 'unknown';
  }

  async toastButtons(toast: Locator): Promise<string[]> {
    return toast.getByRole('button').evaluateAll((els) => els.map((e) => String((e as { innerText?: string }).innerText ?? '').trim()).filter((t) => t !== ''));
  }

  async clearNotifications(): Promise<void> {
    await this.runCommand('Notifications: Clear All Notifications');
  }

  /** The modal dialog (e.g. a confirmation) whose text matches. */
  modal(text: RegExp): Locator {
    return this.page.locator('[role="dialog"][aria-modal="true"]').filter({ hasText: text });
  }

  // ---- status bar ---------------------------------------------------------------------------------

  statusItem(): Locator {
    return this.page.locator(byId('workbench.parts.statusbar')).locator(byId(STATUS_ITEM_ID)).getByRole('button');
  }

  // ---- Explorer --------------------------------------------------------------------------------------

  async openExplorer(): Promise<Locator> {
    const tab = this.page.getByRole('tab', { name: /^Explorer/ });
    if ((await tab.getAttribute('aria-selected')) !== 'true') {
      await tab.click();
    }
    const tree = this.page.getByRole('tree', { name: 'Files Explorer' });
    await tree.waitFor({ state: 'visible', timeout: 10_000 });
    return tree;
  }

  async explorerLabels(tree: Locator): Promise<string[]> {
    return tree.getByRole('treeitem').evaluateAll((els: DomElement[]) => els.map((e) => String(e.getAttribute('aria-label'))));
  }

  // ---- terminal -------------------------------------------------------------------------------------

  /** What the terminal panel shows (xterm's DOM renderer rows, or its accessibility tree). */
  async terminalText(): Promise<string> {
    const panel = this.page.locator(byId('workbench.parts.panel'));
    for (const sel of ['.xterm-rows', '.xterm-accessibility']) {
      const el = panel.locator(sel);
      if ((await el.count()) > 0) {
        const texts = await el.evaluateAll((els) => els.map((e) => String((e as { textContent?: string }).textContent ?? '')));
        // textContent joins rows without newlines; innerText keeps them. Prefer innerText where available.
        const inner = await el.evaluateAll((els) => els.map((e) => String((e as { innerText?: string }).innerText ?? '')));
        const t = (inner.join('\n').trim() ? inner : texts).join('\n');
        return t.replace(/\u00a0/g, ' ');
      }
    }
    return '';
  }
}
