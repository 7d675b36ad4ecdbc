#include "balancer/balancer.h"

int main(int argc, char **argv)
{
    return balancer_main(argc, argv);
}
