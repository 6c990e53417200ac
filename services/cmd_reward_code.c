/* cmd_reward_code.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_sandbox(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_reward_code(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
