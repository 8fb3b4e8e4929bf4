import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentIdentity, AgentSocket, findAgent } from '../src/lifecycle/agent-socket.js';

/** A name of this test's own in the abstract namespace: the host's real agent is never involved. */
let serial = 0;
const uniqueName = () => {
  serial += 1;
  return `rc-socket-test-${process.pid}-${serial}`;
};
const logger = pino({ level: 'silent' });
const identity = (state: AgentIdentity['state'] = 'running'): AgentIdentity => ({
  agent: 'route-controller',
  version: '0.1.0',
  pid: 7,
  state,
  backend: 'nft',
});

describe('the agent socket', () => {
  const open: AgentSocket[] = [];
  const socket = (name: string, waitMs?: number) => {
    const made = new AgentSocket(name, logger, waitMs);
    open.push(made);
    return made;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  it('answers who holds it, as the agent says it at that moment', async () => {
    const name = uniqueName();
    expect(await findAgent(name)).toEqual({ kind: 'none' });
    let state: AgentIdentity['state'] = 'starting';
    await socket(name).bind(() => identity(state));
    expect(await findAgent(name)).toEqual({ kind: 'agent', identity: identity('starting') });
    state = 'running';
    expect(await findAgent(name)).toEqual({ kind: 'agent', identity: identity('running') });
  });

  it('refuses a second agent at once, naming the one that runs', async () => {
    const name = uniqueName();
    await socket(name).bind(() => identity('running'));
    const second = socket(name).bind(() => identity('starting'));
    await expect(second).rejects.toMatchObject({
      code: 'ERR_RC_AGENT_RUNNING',
      details: { holder: identity('running') },
    });
  });

  it('waits for an agent that is stopping, and takes the socket once it is gone', async () => {
    const name = uniqueName();
    const old = socket(name);
    await old.bind(() => identity('stopping'));
    setTimeout(() => void old.close(), 300);
    await socket(name).bind(() => identity('starting'));
    expect(await findAgent(name)).toEqual({ kind: 'agent', identity: identity('starting') });
  });

  it('waits for a holder that cuts the connection without an answer (one going away mid-answer)', async () => {
    const name = uniqueName();
    const going = createServer((connection) => connection.destroy());
    await new Promise<void>((resolve) => going.listen({ path: `\0${name}` }, resolve));
    setTimeout(() => going.close(), 300);
    await socket(name).bind(() => identity('starting'));
    expect(await findAgent(name)).toEqual({ kind: 'agent', identity: identity('starting') });
  });

  it('refuses one that stays in "stopping" past the wait', async () => {
    const name = uniqueName();
    await socket(name).bind(() => identity('stopping'));
    await expect(socket(name, 300).bind(() => identity('starting'))).rejects.toMatchObject({
      code: 'ERR_RC_AGENT_RUNNING',
    });
  });

  it('frees the name when closed', async () => {
    const name = uniqueName();
    const first = socket(name);
    await first.bind(() => identity());
    await first.close();
    expect(await findAgent(name)).toEqual({ kind: 'none' });
    await socket(name).bind(() => identity());
  });

  it('does not take a squatter that answers nonsense for an agent, and refuses to start beside it once it stays', async () => {
    const name = uniqueName();
    const squatter = createServer((connection) => connection.end('hello\n'));
    await new Promise<void>((resolve) => squatter.listen({ path: `\0${name}` }, resolve));
    try {
      expect(await findAgent(name)).toEqual({ kind: 'unknown', detail: 'an answer that is no identity' });
      await expect(socket(name, 300).bind(() => identity())).rejects.toMatchObject({ code: 'ERR_RC_AGENT_RUNNING' });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
