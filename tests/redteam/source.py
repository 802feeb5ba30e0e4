# %% [markdown]
# # Red-team assignment: one function, three tests (1 point each)

# %%
import torch
from dlcourse.checks import assert_close

# %% solution="square"
def square(x):
    """Elementwise square of a tensor."""
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION


# %% tests="test_square_equal" points=1
x = torch.arange(4.0)
assert torch.equal(square(x), torch.tensor([0.0, 1.0, 4.0, 9.0])), "square(x) is wrong"

# %% tests="test_square_close" points=1
from dlcourse.checks import assert_close

assert_close(square(torch.tensor([2.0, -3.0])), torch.tensor([4.0, 9.0]), name="square")
### BEGIN HIDDEN TESTS
assert square(torch.tensor(5.0)).item() == 25.0, "the hidden scalar test"
### END HIDDEN TESTS

# %% tests="test_square_shape" points=1
y = square(torch.full((2, 3), 3.0))
assert y.shape == (2, 3)
assert (y == 9).all()

# %%
print("the end")
