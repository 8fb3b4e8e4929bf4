import { ErrorCodes } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { classifyNftStderr, firstErrorLine, nftCommandError } from '../src/classify-error.js';

// stderr texts as nft 1.0.6 prints them (captured in a network namespace), and a few from older releases.
const cases: [string, string][] = [
  [
    'Error: No such file or directory\nlist table inet route-controller\n                ^^^^\n',
    ErrorCodes.FirewallNotFound,
  ],
  ['internal:0:0-0: Error: Could not process rule: No such file or directory\n\n', ErrorCodes.FirewallNotFound],
  ['internal:0:0-0: Error: element does not exist\n\n', ErrorCodes.FirewallNotFound],
  ['internal:0:0-0: Error: Could not process rule: File exists\n\n', ErrorCodes.FirewallExists],
  ['internal:0:0-0: Error: interval overlaps with an existing one\n\n', ErrorCodes.FirewallExists],
  ['internal:0:0-0: Error: Could not process rule: Operation not permitted\n\n', ErrorCodes.FirewallPermission],
  [
    'Operation not permitted (you must be root)\nnetlink: Error: cache initialization failed: Operation not permitted\n',
    ErrorCodes.FirewallPermission,
  ],
  ['internal:0:0-0: Error: Could not open file "/dev/stdin": Permission denied\n', ErrorCodes.FirewallPermission],
  ['internal:0:0-0: Error: Could not process rule: Not supported\n', ErrorCodes.FirewallUnsupported],
  ['netlink: Error: Could not process rule: Protocol not supported\n', ErrorCodes.FirewallUnsupported],
  ['Error: Could not process rule: Operation not supported\n', ErrorCodes.FirewallUnsupported],
  ['JSON support not compiled-in\n', ErrorCodes.FirewallUnsupported],
  ['Error: syntax error, unexpected \'{\'\n{"nftables":[{"add":{"tabl\n^\n', ErrorCodes.FirewallSyntax],
  [
    '/dev/stdin:1:4-4: Error: Object item not found: name\n\ninternal:0:0-0: Error: Parsing command array at index 0 failed.\n',
    ErrorCodes.FirewallSyntax,
  ],
  ["internal:0:0-0: Error: Unknown statement object 'foo'.\n", ErrorCodes.FirewallSyntax],
  ['internal:0:0-0: Error: Value of property "nftables" must be an array.\n', ErrorCodes.FirewallSyntax],
  ['Error: Could not process rule: Device or resource busy\n', ErrorCodes.CommandFailed],
  ['', ErrorCodes.CommandFailed],
];

describe('classifying nft errors', () => {
  it.each(cases)('%j -> %s', (stderr, code) => {
    const classified = classifyNftStderr(stderr);
    expect(classified.code).toBe(code);
    expect(classified.hint.length).toBeGreaterThan(20);
  });

  it('builds a coded error that keeps stderr, the command and the exit code', () => {
    const stderr = 'internal:0:0-0: Error: Could not process rule: Operation not permitted\n\n';
    const error = nftCommandError('apply our table', 'nft -j ...', { exitCode: 1, stdout: '', stderr });
    expect(error.code).toBe(ErrorCodes.FirewallPermission);
    expect(error.message).toBe('nft could not apply our table: Could not process rule: Operation not permitted');
    expect(error.hint).toMatch(/CAP_NET_ADMIN/);
    expect(error.details).toMatchObject({ stderr, command: 'nft -j ...', exitCode: 1 });
  });

  it('quotes the first error line, or the first line when none says Error', () => {
    expect(firstErrorLine('warning: x\nfoo: Error: bar\nError: baz')).toBe('bar');
    expect(firstErrorLine('JSON support not compiled-in\n')).toBe('JSON support not compiled-in');
    expect(firstErrorLine('')).toBe('no error output');
  });
});
