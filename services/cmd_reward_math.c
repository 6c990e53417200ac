/* cmd_reward_math.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_reward_math(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
