/** Where the agent says what it does: JSON lines on stdout by default, one object per line. */
export interface AgentLog {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
}

export const jsonLog: AgentLog = {
  info: (msg, fields) => process.stdout.write(JSON.stringify({ level: 'info', time: Date.now(), msg, ...fields }) + '\n'),
  warn: (msg, fields) => process.stdout.write(JSON.stringify({ level: 'warn', time: Date.now(), msg, ...fields }) + '\n'),
};
