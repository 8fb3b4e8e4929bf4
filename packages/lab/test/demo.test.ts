import { ErrorCodes } from '@route-controller/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runDemo } from '../src/demo/run-demo.js';

describe('pnpm demo', () => {
  afterEach(() => vi.restoreAllMocks());

  it('refuses to run without root, saying why, before creating anything', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    const progress = vi.fn();
    await expect(runDemo({ agentBin: '/nonexistent/route-controller.js', pings: 1, progress })).rejects.toMatchObject({
      code: ErrorCodes.FirewallPermission,
      message: expect.stringContaining('the demo needs root'),
      hint: expect.stringContaining('sudo'),
    });
    expect(progress).not.toHaveBeenCalled();
  });
});
