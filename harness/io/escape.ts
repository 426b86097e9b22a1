/**
 * Text as fwbench echoes it on a terminal or in a log: control characters (C0, DEL, C1, line and
 * paragraph separators) shown as escapes, so a name read from a file, a folder or the command line
 * cannot move the cursor, clear the screen or forge a line of output.
 */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is this function's job
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
