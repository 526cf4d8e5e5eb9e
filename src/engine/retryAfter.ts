/** Parses Retry-After (seconds or an HTTP-date) and bounds it; garbage gives undefined. */
export function parseRetryAfter(value: string | string[] | undefined, now: number, maxSeconds: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) {
    return undefined;
  }
  const t = v.trim();
  let seconds: number | undefined;
  if (/^\d{1,12}$/.test(t)) {
    seconds = Number(t);
  } else if (t.length < 64) {
    const at = Date.parse(t);
    if (!Number.isNaN(at)) {
      seconds = Math.max(0, Math.ceil((at - now) / 1000));
    }
  }
  return seconds === undefined ? undefined : Math.min(seconds, maxSeconds);
}
