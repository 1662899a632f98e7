/* placeholder so the tree builds during bootstrap; replaced by the CLI */
#include <stdio.h>
int main(void) { puts("ftune bootstrap"); return 0; }
