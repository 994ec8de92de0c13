/**
 * Children that run as this (root) test process does, less the capabilities that let root write into and read any
 * folder (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): like the service's image, which runs as a user that is not root,
 * such a child cannot delete what is inside a `0555` folder. `setpriv` is util-linux's, on every Debian machine.
 */
export const WITHOUT_DAC_OVERRIDE = ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search', '--'];
