import type { CommandRequest, CommandResult, CommandRunner } from '../command-runner.js';

export interface RecordedCommand {
  readonly request: CommandRequest;
  readonly result?: CommandResult;
  readonly error?: unknown;
}

/** Passes commands through and remembers them, so tests can count what a backend ran. */
export class RecordingCommandRunner implements CommandRunner {
  readonly commands: RecordedCommand[] = [];

  constructor(private readonly inner: CommandRunner) {}

  async run(request: CommandRequest): Promise<CommandResult> {
    try {
      const result = await this.inner.run(request);
      this.commands.push({ request, result });
      return result;
    } catch (error) {
      this.commands.push({ request, error });
      throw error;
    }
  }

  count(predicate: (request: CommandRequest) => boolean = () => true): number {
    return this.commands.filter((command) => predicate(command.request)).length;
  }
}
