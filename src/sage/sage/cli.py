def main():
    print('sage')
