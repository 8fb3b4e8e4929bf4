import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReplaceTransaction, renderWriteCommand } from '@route-controller/backend-nft';
import { desiredState, parseCidrList } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { shellLines } from '../src/commands/plan.js';

describe('plan output', () => {
  const document = renderReplaceTransaction(desiredState(parseCidrList('10.96.0.0/16,fd00:10:96::/112').cidrs));
  const command = renderWriteCommand(document);

  it('prints the nft document pretty-printed, one JSON token per line, not one escaped line', () => {
    const lines = shellLines(command);
    expect(lines[0]).toBe(`$ nft -j "$(cat <<'EOF'`);
    expect(lines.at(-2)).toBe('EOF');
    expect(lines.every((line) => line.length < 120)).toBe(true);
    expect(lines).toContain('  "nftables": [');
  });

  it('is a shell command that gives nft exactly the planned document', () => {
    // Run the printed text with a stand-in nft that prints its arguments joined as nft joins them.
    const dir = mkdtempSync(join(tmpdir(), 'rc-plan-'));
    const fake = join(dir, 'nft');
    writeFileSync(fake, '#!/bin/sh\nshift\nprintf "%s" "$*"\n', { mode: 0o755 });
    const script = shellLines(command).join('\n').replace(/^\$ /, '');
    const printed = execFileSync('sh', ['-c', script], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: 'utf8' });
    expect(JSON.parse(printed)).toEqual(document);
    expect(JSON.parse(command.args.slice(1).join(' '))).toEqual(document);
  });

  it('prints an iptables-restore payload as a here-document on stdin', () => {
    const lines = shellLines({ file: 'iptables-nft-restore', args: ['--noflush'], input: '*filter\nCOMMIT\n' });
    expect(lines).toEqual(["$ iptables-nft-restore --noflush <<'EOF'", '*filter', 'COMMIT', 'EOF']);
  });
});
