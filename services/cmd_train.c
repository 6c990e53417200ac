/* cmd_train.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_train(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
