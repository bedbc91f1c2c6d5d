// vitest setup (every test file): code contracts on, as DECREE_CONTRACTS=1 turns them on in the
// decree command. The variable stays set too, so child processes the tests start have them on.
import { setContracts } from '@decree/protocol';

setContracts(true);
