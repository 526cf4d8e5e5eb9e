// Text that came from outside (server answers and headers, redirect targets, file and job names, the job store)
// on its way into VS Code's UI, which renders some of it: a hover or tooltip is Markdown, and a notification turns
// `[label](command:…)` into a clickable link that runs the command. No vscode import, so plain Node tests it.

/** For Markdown (hovers, tooltips): every Markdown, HTML and theme-icon character escaped; spaces kept (see below). */
export function escapeMarkdown(text: string): string {
  // (MarkdownString.appendText would turn spaces into &nbsp;, which stops wrapping.)
  return text.replace(/[\\`*_{}[\]()#+\-!|<>~$]/g, '\\$&').replace(/\r\n?|\n/g, '  \n');
}

/**
 * For a notification's message: no link can form. VS Code links `[label](target)` only when `](` is adjacent, so a
 * space goes between them; everything else reads as it was (our own messages carry parentheses and quotes).
 */
export function notificationText(text: string): string {
  return text.replace(/\]\s*\(/g, '] (');
}
