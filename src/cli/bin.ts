#!/usr/bin/env node
import { trace } from '../util/trace.js';
import { main } from './main.js';

// `clip-iqa photos/ --format csv | head` closes the pipe early: that ends the run quietly, as other tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await main();
trace('done');
